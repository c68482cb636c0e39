/**
 * `trellis route explain --from A --to B METHOD PATH [--header k=v ...]`: what A's proxy would do
 * with that request to B, without sending it — the HTTPRoute rule that matches (or 404 NO_ROUTE),
 * the backends with their share of traffic, subsets and current instance counts, the rule's filters,
 * timeouts and retries, B's TrafficPolicy, and what B's authorization would decide.
 * Resources come through the SDK; the decision is the pure explainRoute (proxy/routing/explain.ts),
 * built on the proxy's route table; authorization reuses can-i's decideCanI (the proxy's engine).
 * Exit 0 when a route matches, 1 when none does (404 NO_ROUTE, or 400 BAD_REQUEST), 2 on error.
 */
import { parseHeaders } from '../options.js';
import type { HTTPRouteFilter, HTTPRouteMatch, ResourceOf } from '../../api/schema/resources.js';
import { DEFAULT_MESH_CONFIG } from '../../api/schema/resources.js';
import { TrellisApiError, type TrellisClient } from '../../sdk/client.js';
import { explainRoute, type ExplainInstance, type RouteExplanation } from '../../proxy/routing/explain.js';
import { renderTable, toJson, toYaml, type OutputFormat } from '../output.js';
import { decideCanI } from './can-i.js';
import { clientFor, handleApiError, type ClientCliOptions } from './resources.js';
import { byName } from '../../api/resource-order.js';
import { applyRolloutSplits } from '../../control-plane/core/rollout-routing.js';

export interface RouteAuthorization {
  service: string;
  allowed: boolean;
  outcome: string;
  status: number;
  policy?: string;
  rule?: number;
  reason: string;
}

export type RouteExplainResult = RouteExplanation & { from: string; authorization: RouteAuthorization[] };


const labels = (m: Record<string, string> | undefined) => (m && Object.keys(m).length ? Object.entries(m).map(([k, v]) => `${k}=${v}`).join(',') : '-');

function describeMatch(m: HTTPRouteMatch | undefined): string {
  if (!m) return 'any request (the rule has no matches)';
  const parts: string[] = [];
  if (m.path) parts.push(`path ${m.path.type} ${m.path.value}`);
  if (m.method) parts.push(`method ${m.method}`);
  for (const h of m.headers ?? []) parts.push(`header ${h.name}${h.type === 'RegularExpression' ? ' ~ ' : ': '}${h.value}`);
  for (const q of m.queryParams ?? []) parts.push(`query ${q.name}${q.type === 'RegularExpression' ? ' ~ ' : '='}${q.value}`);
  return parts.length ? parts.join(', ') : 'any request';
}

function describeFilter(f: HTTPRouteFilter): string {
  switch (f.type) {
    case 'RequestHeaderModifier':
    case 'ResponseHeaderModifier': {
      const mod = f.type === 'RequestHeaderModifier' ? f.requestHeaderModifier : f.responseHeaderModifier;
      const parts = [
        ...(mod.remove ?? []).map((n) => `remove ${n}`),
        ...(mod.set ?? []).map((h) => `set ${h.name}: ${h.value}`),
        ...(mod.add ?? []).map((h) => `add ${h.name}: ${h.value}`),
      ];
      return `${f.type}: ${parts.join('; ') || 'nothing'}`;
    }
    case 'FaultInjection': {
      const parts: string[] = [];
      if (f.faultInjection.delay) parts.push(`delay ${f.faultInjection.delay.fixed} for ${f.faultInjection.delay.percent}%`);
      if (f.faultInjection.abort) parts.push(`abort ${f.faultInjection.abort.status} (FAULT_INJECTED) for ${f.faultInjection.abort.percent}%`);
      return `FaultInjection: ${parts.join('; ') || 'nothing'}`;
    }
    case 'RequestMirror': {
      const b = f.requestMirror.backendRef;
      return `RequestMirror: ${f.requestMirror.percent}% copied to ${b.name}${b.subset ? `[${labels(b.subset)}]` : ''} (responses discarded)`;
    }
  }
}

function indent(text: string, by: string): string {
  return text.split('\n').map((l) => (l ? by + l : l)).join('\n');
}

export function formatRouteExplanation(r: RouteExplainResult, format: OutputFormat): string {
  if (format === 'json') return toJson(r);
  if (format === 'yaml') return toYaml(r);
  const lines: string[] = [];
  const field = (k: string, v: string) => lines.push(`  ${(k ? k + ':' : '').padEnd(15)} ${v}`);
  const target = `${r.from} → ${r.service} ${r.request.method} ${r.request.path}`;
  const normalised = r.request.normalisedPath !== undefined && r.request.normalisedPath !== r.request.path.split('?')[0]
    ? ` (normalised: ${r.request.normalisedPath})` : '';
  if (!r.matched) {
    lines.push(r.outcome === 'NO_ROUTE' ? 'no route matches → 404 NO_ROUTE' : `bad request → ${r.status} ${r.outcome}`);
    field('request', target + normalised);
    if (r.message) field('reason', r.message);
    field('rules tried', r.candidates.join(', ') || 'none');
    return lines.join('\n') + '\n';
  }
  const route = r.route!;
  lines.push(route.rule === undefined
    ? `route matched: default (no HTTPRoute attaches to ${r.service}: everything goes to ${r.service})`
    : `route matched: HTTPRoute/${route.name} rule ${route.rule}${route.ruleName ? ` (${route.ruleName})` : ''}`);
  field('request', target + normalised);
  const hdrs = Object.entries(r.request.headers);
  if (hdrs.length) field('headers', hdrs.map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}`).join('; '));
  if (route.rule !== undefined) field('match', describeMatch(route.match));
  field('metrics label', `route="${route.id}"`);
  lines.push('  backends:');
  lines.push(indent(renderTable(['SERVICE', 'SUBSET', 'WEIGHT', 'SHARE', 'INSTANCES'],
    r.backends.map((b) => [b.name, labels(b.subset), String(b.weight), `${b.percent}%`,
      `${b.instances}${b.draining ? ` (+${b.draining} draining)` : ''}`])).trimEnd(), '    '));
  if (r.backends.some((b) => b.percent > 0 && b.instances === 0)) {
    field('warning', 'a backend with traffic has no instance: its share is answered 503 NO_HEALTHY_UPSTREAM');
  }
  if (r.filters.length === 0) field('filters', 'none');
  else {
    lines.push('  filters:');
    for (const f of r.filters) lines.push(`    ${describeFilter(f)}`);
  }
  if (r.mirror) field('mirror', `${r.mirror.name}${r.mirror.subset ? `[${labels(r.mirror.subset)}]` : ''}: ${r.mirror.percent}%, ${r.mirror.instances} instance(s)`);
  const t = r.timeouts;
  field('timeouts', [
    `request ${t.request ? `${t.request.value} (${t.request.source})` : 'none'}`,
    `backendRequest ${t.backendRequest ? `${t.backendRequest.value} (per try)` : 'none'}`,
    ...(t.connect ? [`connect ${t.connect}`] : []),
    ...(t.idle ? [`idle ${t.idle}`] : []),
  ].join(', '));
  if (!r.retry) field('retry', 'none');
  else {
    const x = r.retry;
    field('retry', `${x.attempts} retr${x.attempts === 1 ? 'y' : 'ies'} (at most ${x.maxTries} tries) on ${x.on.join(', ')}${x.codes?.length ? ` codes ${x.codes.join(',')}` : ''}`
      + `; perTryTimeout ${x.perTryTimeout ?? 'none'}; backoff ${x.backoff}`);
    field('', `budget ${x.budget.percent}% of requests, min ${x.budget.minRetriesPerSecond}/s (${x.budget.source})`
      + `${x.maxConcurrentRetries !== undefined ? `; circuitBreaker.maxRetries ${x.maxConcurrentRetries}` : ''}`);
    if (!x.appliesToMethod) field('', `${r.request.method} is not retried (only idempotent methods are)`);
  }
  const p = r.trafficPolicy;
  lines.push(`  traffic policy: ${p.name ? `TrafficPolicy/${p.name}` : `none for ${r.service} (defaults)`}`);
  const sub = (k: string, v: string) => lines.push(`    ${(k + ':').padEnd(18)} ${v}`);
  const lb = p.loadBalancer as { type: string; hashOn?: { header?: string; cookie?: string; sourceIdentity?: boolean } };
  sub('load balancer', `${lb.type}${lb.hashOn ? ` on ${lb.hashOn.header ? `header ${lb.hashOn.header}` : lb.hashOn.cookie ? `cookie ${lb.hashOn.cookie}` : 'source identity'}` : ''}`);
  const hc = p.healthCheck;
  sub('health check', hc ? `${hc.http ? `http ${hc.http.path}` : 'tcp'} every ${hc.interval}, timeout ${hc.timeout}, unhealthy after ${hc.unhealthyThreshold}, healthy after ${hc.healthyThreshold}` : 'none (passive only)');
  const od = p.outlierDetection;
  if (od && 'default' in od) sub('outlier detection', `default: ${od.default}`);
  else if (od) {
    sub('outlier detection', [
      ...(od.consecutive5xx !== undefined ? [`${od.consecutive5xx} consecutive 5xx`] : []),
      ...(od.consecutiveGatewayErrors !== undefined ? [`${od.consecutiveGatewayErrors} consecutive gateway errors`] : []),
      `interval ${od.interval}`, `ejection ${od.baseEjectionTime}`, `max ${od.maxEjectionPercent}% ejected`,
    ].join(', '));
  }
  const cb = p.circuitBreaker;
  sub('circuit breaker', cb ? Object.entries(cb).map(([k, v]) => `${k} ${v}`).join(', ') || 'set, no limits' : 'none');
  sub('rate limit', p.rateLimit ? `${p.rateLimit.requestsPerSecond}/s burst ${p.rateLimit.burst}${p.rateLimit.perSource ? ' per source' : ''} (${p.rateLimit.where})` : 'none');
  sub('retry budget', `${p.retryBudget.percent}%, min ${p.retryBudget.minRetriesPerSecond}/s (${p.retryBudget.source})`);
  for (const a of r.authorization) {
    field(`authz ${a.service}`, a.allowed
      ? `allowed${a.policy ? ` by AuthorizationPolicy/${a.policy} rule ${a.rule}` : ''} (${a.reason})`
      : `denied: ${a.status} ${a.outcome}${a.policy ? ` by AuthorizationPolicy/${a.policy} rule ${a.rule}` : ''} (${a.reason})`);
  }
  lines.push('  (nothing was sent: this is what the proxy of the caller would do)');
  return lines.join('\n') + '\n';
}

async function instancesOf(client: TrellisClient, name: string): Promise<ExplainInstance[]> {
  try {
    const d = await client.describeService(name);
    return d.instances.map((i) => ({ id: i.id, address: i.address, labels: i.labels, draining: i.draining }));
  } catch (err) {
    if (err instanceof TrellisApiError && err.status === 404) return [];
    throw err;
  }
}

export async function runRouteExplain(method: string, path: string, opts: ClientCliOptions & { from: string; to: string; header: string[]; output: OutputFormat }): Promise<void> {
  try {
    const headers = parseHeaders(opts.header);
    const client = clientFor(opts);
    const [status, routes, policies, authz, jwts, meshConfigs, services, rollouts] = await Promise.all([
      client.status(),
      client.list('HTTPRoute'),
      client.list('TrafficPolicy'),
      client.list('AuthorizationPolicy'),
      client.list('JWTAuthentication'),
      client.list('MeshConfig'),
      client.services(),
      client.rollouts().catch(() => []),
    ]);
    if (!services.some((s) => s.name === opts.to)) throw new Error(`unknown service "${opts.to}": no Service resource and no registered instance`);
    // The routes as the compiler sends them: with the split of every Rollout in force (core/rollout-routing.ts).
    const httpRoutes = applyRolloutSplits(routes.filter((r): r is ResourceOf<'HTTPRoute'> => r.kind === 'HTTPRoute'), rollouts.filter((r) => r.trafficSplit)
      .map((r) => ({ rollout: r.name, service: r.service, stable: r.stable, canary: r.canary, canaryWeight: r.canaryWeight })));
    // The compiler gives a service the first TrafficPolicy targeting it, by name.
    const trafficPolicy = policies
      .filter((p): p is ResourceOf<'TrafficPolicy'> => p.kind === 'TrafficPolicy' && p.spec.targetRef.name === opts.to)
      .sort(byName)[0];
    const probe = explainRoute({ service: opts.to, routes: httpRoutes, trafficPolicy, request: { method, path, headers } });
    const names = new Set<string>([...probe.backends.map((b) => b.name), ...(probe.mirror ? [probe.mirror.name] : [])]);
    const instances: Record<string, ExplainInstance[]> = {};
    await Promise.all([...names].map(async (n) => { instances[n] = await instancesOf(client, n); }));
    const explained = explainRoute({ service: opts.to, routes: httpRoutes, trafficPolicy, instances, request: { method, path, headers } });

    const mesh = meshConfigs.find((m): m is ResourceOf<'MeshConfig'> => m.kind === 'MeshConfig' && m.metadata.name === 'default');
    const auth = headers['authorization'];
    const bearer = typeof auth === 'string' && /^bearer /i.test(auth) ? auth.slice(7).trim() : undefined;
    const authorization: RouteAuthorization[] = [];
    if (explained.matched) {
      for (const svc of new Set(explained.backends.filter((b) => b.percent > 0).map((b) => b.name))) {
        const d = decideCanI({
          from: opts.from, to: svc, method: explained.request.method, path, headers,
          ...(bearer !== undefined ? { jwt: bearer } : {}),
          ...(services.find((s) => s.name === svc)?.port !== undefined ? { port: services.find((s) => s.name === svc)!.port! } : {}),
          trustDomain: status.trustDomain,
          authorizationPolicies: authz.filter((r): r is ResourceOf<'AuthorizationPolicy'> => r.kind === 'AuthorizationPolicy' && r.spec.targetRef.name === svc),
          jwtAuthentications: jwts.filter((r): r is ResourceOf<'JWTAuthentication'> => r.kind === 'JWTAuthentication' && r.spec.targetRef.name === svc),
          defaultAction: (mesh?.spec ?? DEFAULT_MESH_CONFIG).authorization.default,
        });
        authorization.push({
          service: svc, allowed: d.allowed, outcome: d.outcome, status: d.status,
          ...(d.policy !== undefined ? { policy: d.policy } : {}),
          ...(d.rule !== undefined ? { rule: d.rule } : {}),
          reason: d.reason,
        });
      }
    }
    const result: RouteExplainResult = { from: opts.from, ...explained, authorization };
    process.stdout.write(formatRouteExplanation(result, opts.output));
    process.exitCode = explained.matched ? 0 : 1;
  } catch (err) {
    handleApiError(err);
    process.exitCode = 2;
  }
}
