/**
 * `trellis route explain`, the pure part: what an outbound proxy would do with one request to a
 * service, without sending it. It runs the proxy's own code wherever the proxy decides something:
 *  - ingress hygiene (http/headers.ts: hop-by-hop and x-trellis-* headers dropped) and path
 *    normalisation (authz/path.ts), both done before route dispatch;
 *  - route matching with compileRouteTable (routing/route-table.ts), the table the proxy builds;
 *  - the defaults the filters apply (retry backoff and idempotent methods from filters/retry.ts, the
 *    retry budget from filters/retry-budget.ts), and the timeout fallback of filters/timeout.ts
 *    (rule `timeouts.request`, else the TrafficPolicy's; "0s" means none).
 * Instances are counted like the cluster's subset balancer does (every subset label must match);
 * draining instances get no new traffic and are counted apart.
 */
import type {
  BackendRef, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule, ResourceOf, TrafficPolicySpec,
} from '../../api/schema/resources.js';
import { parseDuration } from '../../api/duration.js';
import { endToEndHeaders, stripMeshHeaders } from '../http/headers.js';
import { normaliseTarget } from '../authz/path.js';
import type { HeaderMap, MeshRequest } from '../pipeline/types.js';
import { DEFAULT_BACKOFF_MS, IDEMPOTENT_METHODS } from '../filters/retry.js';
import { DEFAULT_RETRY_BUDGET } from '../filters/retry-budget.js';
import { matchesSubset } from '../upstream/cluster.js';
import { compileRouteTable } from './route-table.js';

export interface ExplainInstance {
  id?: string;
  address?: string;
  labels: Readonly<Record<string, string>>;
  /** Disconnected and in its grace period: gets no new traffic. */
  draining?: boolean;
}

export interface ExplainInput {
  /** The destination service (`--to`): the parent the HTTPRoutes attach to. */
  service: string;
  routes: readonly ResourceOf<'HTTPRoute'>[];
  /** The TrafficPolicy targeting the destination, if any (the proxy uses the first by name). */
  trafficPolicy?: ResourceOf<'TrafficPolicy'>;
  /** Registered instances per service name (backends and mirror targets). */
  instances?: Readonly<Record<string, readonly ExplainInstance[]>>;
  request: { method: string; path: string; headers?: Readonly<Record<string, string | string[]>> };
}

export interface ExplainedBackend {
  name: string;
  subset?: Record<string, string>;
  weight: number;
  /** Share of this rule's traffic, 0–100 (two decimals). */
  percent: number;
  /** Instances of `name` matching the subset that get new traffic, and draining ones. */
  instances: number;
  draining: number;
}

export interface ExplainedTimeout {
  value: string;
  ms: number;
  /** Where it comes from: "route" or "TrafficPolicy/NAME". */
  source: string;
}

export interface ExplainedRetry {
  /** Retries (Gateway API meaning): at most 1 + attempts tries. */
  attempts: number;
  maxTries: number;
  perTryTimeout?: string;
  backoff: string;
  on: string[];
  codes?: number[];
  /** Only idempotent methods are retried; false when this request's method is not. */
  appliesToMethod: boolean;
  budget: { percent: number; minRetriesPerSecond: number; source: string };
  /** circuitBreaker.maxRetries of the destination, when set. */
  maxConcurrentRetries?: number;
}

export interface ExplainedPolicy {
  name?: string;
  loadBalancer: NonNullable<TrafficPolicySpec['loadBalancer']> | { type: 'RoundRobin' };
  healthCheck?: TrafficPolicySpec['healthCheck'];
  /** The configured outlier detection, or the proxy's default. */
  outlierDetection: TrafficPolicySpec['outlierDetection'] | { default: string };
  circuitBreaker?: TrafficPolicySpec['circuitBreaker'];
  rateLimit?: { requestsPerSecond: number; burst: number; perSource: boolean; where: string };
  retryBudget: { percent: number; minRetriesPerSecond: number; source: string };
  timeouts?: TrafficPolicySpec['timeouts'];
}

export interface RouteExplanation {
  service: string;
  request: { method: string; path: string; normalisedPath?: string; headers: Record<string, string | string[]> };
  matched: boolean;
  /** ROUTED, or what the proxy answers by itself. */
  outcome: 'ROUTED' | 'NO_ROUTE' | 'BAD_REQUEST';
  status?: number;
  message?: string;
  route?: {
    /** The HTTPRoute's name, or "default" when no HTTPRoute attaches to the service. */
    name: string;
    /** Rule index within the route (absent for the default rule). */
    rule?: number;
    ruleName?: string;
    /** The metrics label: "<route>/<rule>" or "default". */
    id: string;
    /** The match of the rule that matched (absent: the rule has no matches, so it matches everything). */
    match?: HTTPRouteMatch;
  };
  backends: ExplainedBackend[];
  filters: HTTPRouteFilter[];
  mirror?: { name: string; subset?: Record<string, string>; percent: number; instances: number; draining: number };
  timeouts: { request?: ExplainedTimeout; backendRequest?: ExplainedTimeout; connect?: string; idle?: string };
  retry?: ExplainedRetry;
  trafficPolicy: ExplainedPolicy;
  /** Rules of the routes attached to the service, in the order the proxy tries them ("route/rule"). */
  candidates: string[];
}

const noBody = { destroy() { /* never read */ } };

/** A MeshRequest-shaped object carrying what route matching reads: method, path (+query), headers. */
function meshRequestFor(service: string, method: string, path: string, headers: HeaderMap): MeshRequest {
  return {
    direction: 'outbound', method, path, authority: service, headers,
    body: noBody as unknown as MeshRequest['body'],
    protocol: 'http', grpc: false, source: {}, destination: service,
    requestId: 'route-explain', startedAt: 0, signal: new AbortController().signal, attrs: {},
  };
}

function countInstances(list: readonly ExplainInstance[] | undefined, subset: Readonly<Record<string, string>> | undefined) {
  const members = (list ?? []).filter((i) => !subset || matchesSubset(i.labels, subset));
  const draining = members.filter((i) => i.draining).length;
  return { instances: members.length - draining, draining };
}

const round2 = (n: number) => Math.round(n * 100) / 100;

function policyView(tp: ResourceOf<'TrafficPolicy'> | undefined): ExplainedPolicy {
  const spec = tp?.spec;
  const budget = spec?.retryBudget
    ? { percent: spec.retryBudget.percent, minRetriesPerSecond: spec.retryBudget.minRetriesPerSecond, source: `TrafficPolicy/${tp!.metadata.name}` }
    : { ...DEFAULT_RETRY_BUDGET, source: 'default' };
  return {
    ...(tp ? { name: tp.metadata.name } : {}),
    loadBalancer: spec?.loadBalancer ?? { type: 'RoundRobin' },
    ...(spec?.healthCheck ? { healthCheck: spec.healthCheck } : {}),
    outlierDetection: spec?.outlierDetection ?? { default: 'eject after 3 consecutive gateway errors or connect failures' },
    ...(spec?.circuitBreaker ? { circuitBreaker: spec.circuitBreaker } : {}),
    ...(spec?.rateLimit ? {
      rateLimit: {
        requestsPerSecond: spec.rateLimit.requestsPerSecond,
        burst: spec.rateLimit.burst ?? Math.ceil(spec.rateLimit.requestsPerSecond),
        perSource: spec.rateLimit.perSource,
        where: 'inbound, at each instance of the destination',
      },
    } : {}),
    retryBudget: budget,
    ...(spec?.timeouts ? { timeouts: spec.timeouts } : {}),
  };
}

/** Which match of `rule` selects the request, found with the proxy's own matcher (one match at a time). */
function matchingMatch(service: string, routeName: string, rule: HTTPRouteRule, req: MeshRequest): HTTPRouteMatch | undefined {
  for (const m of rule.matches ?? []) {
    const probe = {
      apiVersion: 'trellis.dev/v1alpha1', kind: 'HTTPRoute', metadata: { name: routeName },
      spec: { parentRefs: [{ name: service }], rules: [{ matches: [m] }] },
    } as unknown as ResourceOf<'HTTPRoute'>;
    if (compileRouteTable(service, [probe]).match(req)) return m;
  }
  return undefined;
}

function timeoutOf(value: string | undefined, source: string): ExplainedTimeout | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  return ms > 0 ? { value, ms, source } : undefined; // 0s: no timeout, like the proxy
}

/** Explains what the proxy would do with the request. Pure: no I/O, nothing is sent. */
export function explainRoute(input: ExplainInput): RouteExplanation {
  const { service, routes, trafficPolicy: tp } = input;
  const method = input.request.method.toUpperCase();
  const headers = endToEndHeaders(Object.fromEntries(
    Object.entries(input.request.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]),
  ));
  stripMeshHeaders(headers);
  const table = compileRouteTable(service, routes);
  const policy = policyView(tp);
  const base = {
    service,
    backends: [] as ExplainedBackend[], filters: [] as HTTPRouteFilter[], timeouts: {},
    trafficPolicy: policy,
    candidates: table.rules.map((r) => r.name),
  };

  let target: string;
  let normalisedPath: string;
  try {
    const t = normaliseTarget(input.request.path);
    target = t.target;
    normalisedPath = t.path;
  } catch (err) {
    return {
      ...base, request: { method, path: input.request.path, headers },
      matched: false, outcome: 'BAD_REQUEST', status: 400, message: (err as Error).message,
    };
  }
  const request = { method, path: input.request.path, normalisedPath, headers };
  const req = meshRequestFor(service, method, target, headers);
  const hit = table.match(req);
  if (!hit) {
    return {
      ...base, request, matched: false, outcome: 'NO_ROUTE', status: 404,
      message: `no rule of the HTTPRoutes of ${service} matches ${method} ${target}`,
    };
  }

  const rule = hit.rule;
  const isDefault = !routes.some((r) => r.spec.parentRefs.some((p) => p.name === service));
  const ruleIndex = isDefault ? undefined : Number(hit.name.slice(hit.routeName.length + 1));
  const match = isDefault ? undefined : matchingMatch(service, hit.routeName, rule, req);

  const refs: readonly BackendRef[] = rule.backendRefs && rule.backendRefs.length > 0 ? rule.backendRefs : [{ name: service, weight: 1 }];
  const total = refs.reduce((s, r) => s + (r.weight > 0 ? r.weight : 0), 0);
  const backends: ExplainedBackend[] = refs.map((r) => ({
    name: r.name,
    ...(r.subset ? { subset: { ...r.subset } } : {}),
    weight: r.weight,
    percent: total > 0 && r.weight > 0 ? round2((r.weight / total) * 100) : 0,
    ...countInstances(input.instances?.[r.name], r.subset),
  }));

  const filters = [...(rule.filters ?? [])];
  const mirrorFilter = filters.find((f): f is Extract<HTTPRouteFilter, { type: 'RequestMirror' }> => f.type === 'RequestMirror');
  const mirror = mirrorFilter ? {
    name: mirrorFilter.requestMirror.backendRef.name,
    ...(mirrorFilter.requestMirror.backendRef.subset ? { subset: { ...mirrorFilter.requestMirror.backendRef.subset } } : {}),
    percent: mirrorFilter.requestMirror.percent,
    ...countInstances(input.instances?.[mirrorFilter.requestMirror.backendRef.name], mirrorFilter.requestMirror.backendRef.subset),
  } : undefined;

  const requestTimeout = rule.timeouts?.request !== undefined
    ? timeoutOf(rule.timeouts.request, 'route')
    : timeoutOf(tp?.spec.timeouts?.request, `TrafficPolicy/${tp?.metadata.name}`);
  const backendTimeout = timeoutOf(rule.timeouts?.backendRequest, 'route');
  const timeouts = {
    ...(requestTimeout ? { request: requestTimeout } : {}),
    ...(backendTimeout ? { backendRequest: backendTimeout } : {}),
    ...(tp?.spec.timeouts?.connect ? { connect: tp.spec.timeouts.connect } : {}),
    ...(tp?.spec.timeouts?.idle ? { idle: tp.spec.timeouts.idle } : {}),
  };

  let retry: ExplainedRetry | undefined;
  if (rule.retry) {
    const r = rule.retry;
    retry = {
      attempts: r.attempts,
      maxTries: 1 + r.attempts,
      ...(r.perTryTimeout !== undefined ? { perTryTimeout: r.perTryTimeout } : {}),
      backoff: r.backoff ?? `${DEFAULT_BACKOFF_MS}ms`,
      on: [...r.on],
      ...(r.codes ? { codes: [...r.codes] } : {}),
      appliesToMethod: r.attempts > 0 && IDEMPOTENT_METHODS.has(method),
      budget: policy.retryBudget,
      ...(tp?.spec.circuitBreaker?.maxRetries !== undefined ? { maxConcurrentRetries: tp.spec.circuitBreaker.maxRetries } : {}),
    };
  }

  return {
    ...base, request, matched: true, outcome: 'ROUTED',
    route: {
      name: hit.routeName,
      ...(ruleIndex !== undefined ? { rule: ruleIndex } : {}),
      ...(rule.name !== undefined ? { ruleName: rule.name } : {}),
      id: hit.name,
      ...(match ? { match } : {}),
    },
    backends, filters,
    ...(mirror ? { mirror } : {}),
    timeouts,
    ...(retry ? { retry } : {}),
  };
}
