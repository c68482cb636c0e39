/**
 * Routes and splits: every HTTPRoute/TCPRoute with its rules, backends, current weights and shares, and the route's
 * live request rate. The weights are editable: "Preview" sends the changed route to POST /api/v1/apply with dryRun,
 * "Apply" applies it — the same validation as `trellis apply`; refused fields are shown with their path.
 */
import { useState } from 'preact/hooks';
import type { ApplyResult, Overview } from '../../../src/sdk/client.js';
import { client, TrellisApiError } from '../api.js';
import { ms, pct, rps } from '../format.js';
import { backendLabel, backendsOf, draftOf, sameDraft, shares, withWeights, type Draft, type RouteResource } from '../split-edit.js';

export function Routes({ overview }: { overview: Overview }) {
  const routes = overview.routes as RouteResource[];
  if (routes.length === 0) return <p class="empty">No HTTPRoute or TCPRoute: traffic goes to every instance of each service.</p>;
  return <div class="stack">{routes.map((r) => <RouteCard key={`${r.kind}/${r.metadata.name}`} route={r} overview={overview} />)}</div>;
}

type Outcome =
  | { kind: 'preview'; results: ApplyResult[]; before: Draft; after: Draft }
  | { kind: 'applied'; results: ApplyResult[] }
  | { kind: 'error'; message: string; errors: { path: string; message: string }[] };

function RouteCard({ route, overview }: { route: RouteResource; overview: Overview }) {
  const stored = draftOf(route);
  const backends = backendsOf(route);
  // A draft belongs to the backends it was typed for: if the route's backends change meanwhile, it is dropped.
  const shape = backends.map((rule) => rule.map(backendLabel).join('|')).join('\n');
  const [typed, setDraft] = useState<{ shape: string; weights: Draft } | undefined>(undefined);
  const draft = typed && typed.shape === shape ? typed.weights : undefined;
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | undefined>(undefined);
  const editing = draft ?? stored;
  const dirty = draft !== undefined && !sameDraft(draft, stored);
  const stats = new Map(overview.stats.routes.map((r) => [r.route, r]));

  const setWeight = (rule: number, i: number, value: string) => {
    const next = editing.map((r) => [...r]);
    next[rule]![i] = value;
    setDraft({ shape, weights: next });
    setOutcome(undefined);
  };

  const send = async (dryRun: boolean) => {
    setBusy(true);
    try {
      const res = await client().apply([withWeights(route, editing)], { dryRun });
      if (dryRun) setOutcome({ kind: 'preview', results: res.results, before: stored, after: editing });
      else { setOutcome({ kind: 'applied', results: res.results }); setDraft(undefined); }
    } catch (err) {
      const e = err as TrellisApiError;
      setOutcome({ kind: 'error', message: e.message, errors: e instanceof TrellisApiError ? e.errors : [] });
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card route" data-testid="route-card" data-route={route.metadata.name}>
      <header>
        <h3><span class="kind">{route.kind}</span> {route.metadata.name}</h3>
        <span class="muted">for {route.spec.parentRefs.map((p) => p.name).join(', ')}</span>
      </header>
      {route.spec.rules.map((rule, ri) => {
        const ruleStats = route.kind === 'HTTPRoute' ? stats.get(`${route.metadata.name}/${ri}`) : undefined;
        const ruleName = 'name' in rule && rule.name ? rule.name : `rule ${ri}`;
        const s = shares(editing[ri] ?? []);
        const matches = 'matches' in rule && rule.matches ? rule.matches.map(describeMatch).join(' | ') : 'every request';
        return (
          <div class="rule">
            <div class="rule-head">
              <strong>{ruleName}</strong>
              <span class="muted">{matches}</span>
              {ruleStats ? <span class="pill">{`${rps(ruleStats.rps)}/s · ${pct(ruleStats.successRate)} · p99 ${ms(ruleStats.latencyMs.p99)}`}</span> : null}
            </div>
            {backends[ri]!.length === 0 ? <p class="muted small">no backendRefs: the parent service's instances</p> : (
              <table class="split">
                <thead><tr><th>backend</th><th>weight</th><th>share</th></tr></thead>
                <tbody>
                  {backends[ri]!.map((b, bi) => (
                    <tr data-testid="backend-row" data-backend={backendLabel(b)}>
                      <td class="mono">{backendLabel(b)}</td>
                      <td>
                        <input class="weight" type="text" inputMode="numeric" size={6} value={editing[ri]?.[bi] ?? ''}
                          aria-label={`weight of ${backendLabel(b)}`} data-testid="weight-input" data-backend={backendLabel(b)}
                          onInput={(e) => setWeight(ri, bi, (e.target as HTMLInputElement).value)} />
                      </td>
                      <td><div class="share">
                        <div class="bar"><div style={{ width: `${((s[bi] ?? 0) * 100).toFixed(1)}%` }} /></div>
                        <span data-testid="share">{pct(s[bi], 0)}</span>
                      </div></td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        );
      })}
      <div class="actions">
        <button type="button" disabled={!dirty || busy} onClick={() => void send(true)} data-testid="preview-button">Preview (dry run)</button>
        <button type="button" class="primary" disabled={!dirty || busy} onClick={() => void send(false)} data-testid="apply-button">Apply</button>
        <button type="button" class="ghost" disabled={!dirty || busy} onClick={() => { setDraft(undefined); setOutcome(undefined); }}>Reset</button>
        {dirty ? <span class="muted small">unsaved changes</span> : null}
      </div>
      {outcome ? <OutcomeView outcome={outcome} route={route} /> : null}
    </section>
  );
}

function OutcomeView({ outcome, route }: { outcome: Outcome; route: RouteResource }) {
  if (outcome.kind === 'error') {
    return (
      <div class="outcome error" data-testid="apply-errors" role="alert">
        <strong>Refused: {outcome.message}</strong>
        {outcome.errors.length > 0 ? <ul>{outcome.errors.map((e) => <li><code>{e.path}</code>: {e.message}</li>)}</ul> : null}
      </div>
    );
  }
  const summary = outcome.results.map((r) => `${r.kind}/${r.name}: ${outcome.kind === 'preview' ? `would be ${r.action}` : r.action}`).join(', ');
  if (outcome.kind === 'applied') return <div class="outcome ok" data-testid="apply-result" role="status">Applied — {summary}. Proxies get the new split within seconds.</div>;
  const backends = backendsOf(route);
  return (
    <div class="outcome preview" data-testid="preview-result" role="status">
      <strong>Dry run: valid — {summary}</strong>
      <ul>
        {backends.flatMap((rule, ri) => {
          const before = shares(outcome.before[ri] ?? []);
          const after = shares(outcome.after[ri] ?? []);
          return rule.map((b, bi) => (outcome.before[ri]?.[bi] === outcome.after[ri]?.[bi] ? null : (
            <li><span class="mono">{backendLabel(b)}</span>: weight {outcome.before[ri]?.[bi]} ({pct(before[bi], 0)}) → {outcome.after[ri]?.[bi]} ({pct(after[bi], 0)})</li>
          )));
        })}
      </ul>
    </div>
  );
}

function describeMatch(m: { path?: { type: string; value: string }; method?: string; headers?: { name: string; value: string }[] }): string {
  const parts: string[] = [];
  if (m.method) parts.push(m.method);
  if (m.path) parts.push(`${m.path.type} ${m.path.value}`);
  for (const h of m.headers ?? []) parts.push(`${h.name}: ${h.value}`);
  return parts.join(' ') || 'every request';
}
