/** Authorization: the mesh default, every AuthorizationPolicy (target, action, rules) and the most recent denials. */
import type { Overview, Resource } from '../../../src/sdk/client.js';
import { clock, relative } from '../format.js';

type Policy = Extract<Resource, { kind: 'AuthorizationPolicy' }>;

export function Security({ overview }: { overview: Overview }) {
  const a = overview.authorization;
  const policies = a.policies as Policy[];
  return (
    <div class="stack">
      <section class="card">
        <header>
          <h3>Authorization policies</h3>
          <span class="muted">services with no policy: <strong class={a.default === 'deny' ? 'bad' : 'ok'}>{a.default}</strong> (MeshConfig authorization.default)</span>
        </header>
        {policies.length === 0 ? <p class="empty">No AuthorizationPolicy: every mesh identity may call every service (mTLS still required).</p> : (
          <table data-testid="policies">
            <thead><tr><th>policy</th><th>target</th><th>action</th><th>rules</th></tr></thead>
            <tbody>
              {policies.map((p) => (
                <tr data-testid="policy-row" data-policy={p.metadata.name}>
                  <td class="mono">{p.metadata.name}</td>
                  <td>{p.spec.targetRef.name}</td>
                  <td><span class={`badge ${p.spec.action === 'DENY' ? 'bad' : p.spec.action === 'ALLOW' ? 'ok' : 'warn'}`}>{p.spec.action}</span></td>
                  <td class="small">{p.spec.rules.length === 0 ? (p.spec.action === 'ALLOW' ? 'no rule: nothing allowed' : 'no rule: matches nothing') : p.spec.rules.map((r, i) => <div key={i}>{describeRule(r)}</div>)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section class="card">
        <header>
          <h3>Recent denials</h3>
          <span class="muted">{a.denialsKept} kept by the control plane (newest first)</span>
        </header>
        {a.denials.length === 0 ? <p class="empty">No request was denied recently.</p> : (
          <table data-testid="denials">
            <thead><tr><th>time</th><th>source → destination</th><th>request</th><th>policy</th><th>reason</th></tr></thead>
            <tbody>
              {a.denials.map((d) => (
                <tr data-testid="denial-row">
                  <td title={d.at}>{clock(d.at)} <span class="muted small">{relative(d.at)}</span></td>
                  <td>{d.source} → {d.destination}</td>
                  <td class="mono">{d.method} {d.path}</td>
                  <td class="mono">{d.policy ?? 'mesh default'}{d.rule !== undefined ? ` #${d.rule}` : ''}</td>
                  <td class="small">{d.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}

function describeRule(r: Policy['spec']['rules'][number]): string {
  const from = (r.from ?? []).map((f) => [...(f.services ?? []), ...(f.identities ?? [])].join(', ')).filter(Boolean).join(' | ');
  const to = (r.to ?? []).map((t) => [(t.methods ?? []).join(','), (t.paths ?? []).join(','), (t.ports ?? []).join(',')].filter(Boolean).join(' ')).filter(Boolean).join(' | ');
  const when = (r.when ?? []).map((w) => `${w.key} in [${w.values.join(', ')}]`).join(' and ');
  return [from ? `from ${from}` : 'from anyone', to ? `to ${to}` : '', when ? `when ${when}` : ''].filter(Boolean).join(' ');
}
