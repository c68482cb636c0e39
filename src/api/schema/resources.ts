/**
 * The single source of truth for every resource kind (SPEC section 3).
 * TypeScript types are inferred from these schemas; the API, CLI and proxy validate with them.
 */
import { z } from 'zod';
import { API_VERSION, Duration, LabelMap, Metadata, Name, Percent, Protocol, TargetRef } from './common.js';
import { isLinearTimeRegex } from './regex-safety.js';
import { isDuration, parseDuration } from '../duration.js';

// ---------- MeshConfig ----------
export const MeshConfigSpec = z.object({
  // STRICT: inbound listeners take mTLS only. PERMISSIVE: also plaintext HTTP/1.1, h2c and TCP on the same
  // port, with no peer identity (proxy/listeners/inbound.ts); proxies always originate mTLS either way.
  mtls: z.enum(['STRICT', 'PERMISSIVE']).default('STRICT'),
  authorization: z.object({ default: z.enum(['allow', 'deny']).default('allow') }).strict().default({ default: 'allow' }),
  certificateTTL: Duration.default('24h'),
  tracing: z.object({
    otlpEndpoint: z.string().url().optional(),
    sampling: Percent.default(1),
  }).strict().optional(),
  accessLog: z.object({ format: z.enum(['json', 'text']).default('json') }).strict().optional(),
}).strict();

// ---------- Service ----------
export const ServiceSpec = z.object({
  protocol: Protocol.default('http'),
  port: z.number().int().min(1).max(65535).optional(),
}).strict();

// ---------- HTTPRoute ----------
const PathMatch = z.object({
  type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
  value: z.string().min(1),
}).strict().superRefine((m, ctx) => {
  if (m.type !== 'RegularExpression' && !m.value.startsWith('/')) {
    ctx.addIssue({ code: 'custom', path: ['value'], message: 'must start with "/"' });
  }
  if (m.type === 'RegularExpression') {
    const problem = isLinearTimeRegex(m.value);
    if (problem) ctx.addIssue({ code: 'custom', path: ['value'], message: problem });
  }
});

const StringMatch = z.object({
  name: z.string().min(1),
  value: z.string(),
  type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
}).strict().superRefine((m, ctx) => {
  if (m.type === 'RegularExpression') {
    const problem = isLinearTimeRegex(m.value);
    if (problem) ctx.addIssue({ code: 'custom', path: ['value'], message: problem });
  }
});

export const HTTPRouteMatch = z.object({
  path: PathMatch.optional(),
  method: z.string().regex(/^[A-Z]+$/, 'must be an upper-case HTTP method').optional(),
  headers: z.array(StringMatch).optional(),
  queryParams: z.array(StringMatch).optional(),
}).strict();

export const BackendRef = z.object({
  name: Name,
  subset: LabelMap.optional(),
  weight: z.number().int().min(0).max(1_000_000).default(1),
}).strict();

const HeaderModifier = z.object({
  set: z.array(z.object({ name: z.string().min(1), value: z.string() }).strict()).optional(),
  add: z.array(z.object({ name: z.string().min(1), value: z.string() }).strict()).optional(),
  remove: z.array(z.string().min(1)).optional(),
}).strict();

export const HTTPRouteFilter = z.discriminatedUnion('type', [
  z.object({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: HeaderModifier }).strict(),
  z.object({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: HeaderModifier }).strict(),
  z.object({
    type: z.literal('RequestMirror'),
    requestMirror: z.object({ backendRef: BackendRef.omit({ weight: true }), percent: Percent.default(100) }).strict(),
  }).strict(),
  z.object({
    type: z.literal('FaultInjection'),
    faultInjection: z.object({
      delay: z.object({ fixed: Duration, percent: Percent.default(100) }).strict().optional(),
      abort: z.object({ status: z.number().int().min(200).max(599), percent: Percent.default(100) }).strict().optional(),
    }).strict(),
  }).strict(),
]);

export const RetryOn = z.enum(['5xx', 'gateway-error', 'connect-failure', 'reset', 'retriable-status-codes']);

export const HTTPRouteRule = z.object({
  name: z.string().optional(),
  matches: z.array(HTTPRouteMatch).optional(),
  backendRefs: z.array(BackendRef).optional(),
  filters: z.array(HTTPRouteFilter).optional(),
  timeouts: z.object({ request: Duration.optional(), backendRequest: Duration.optional() }).strict().optional(),
  retry: z.object({
    attempts: z.number().int().min(0).max(10).default(2),
    perTryTimeout: Duration.optional(),
    backoff: Duration.optional(),
    on: z.array(RetryOn).default(['connect-failure', 'reset', 'gateway-error']),
    codes: z.array(z.number().int().min(100).max(599)).optional(),
  }).strict().optional(),
}).strict().superRefine((rule, ctx) => {
  const refs = rule.backendRefs ?? [];
  if (refs.length > 0 && refs.every((r) => r.weight === 0)) {
    ctx.addIssue({ code: 'custom', path: ['backendRefs'], message: 'weights sum to 0: at least one backend needs a positive weight' });
  }
});

export const HTTPRouteSpec = z.object({
  parentRefs: z.array(TargetRef).min(1),
  rules: z.array(HTTPRouteRule).min(1),
}).strict();

// ---------- TCPRoute ----------
export const TCPRouteSpec = z.object({
  parentRefs: z.array(TargetRef).min(1),
  rules: z.array(z.object({ backendRefs: z.array(BackendRef).min(1) }).strict()
    .superRefine((rule, ctx) => {
      if (rule.backendRefs.every((r) => r.weight === 0)) {
        ctx.addIssue({ code: 'custom', path: ['backendRefs'], message: 'weights sum to 0: at least one backend needs a positive weight' });
      }
    })).min(1),
}).strict();

// ---------- TrafficPolicy ----------
export const LoadBalancerType = z.enum(['RoundRobin', 'LeastRequest', 'EWMA', 'Random', 'RingHash']);

export const TrafficPolicySpec = z.object({
  targetRef: TargetRef,
  loadBalancer: z.object({
    type: LoadBalancerType.default('RoundRobin'),
    hashOn: z.object({
      header: z.string().min(1).optional(),
      cookie: z.string().min(1).optional(),
      sourceIdentity: z.boolean().optional(),
    }).strict().refine((h) => [h.header, h.cookie, h.sourceIdentity].filter((v) => v !== undefined && v !== false).length === 1, {
      message: 'set exactly one of header, cookie, sourceIdentity',
    }).optional(),
  }).strict().superRefine((lb, ctx) => {
    if (lb.type === 'RingHash' && !lb.hashOn) ctx.addIssue({ code: 'custom', path: ['hashOn'], message: 'RingHash needs hashOn' });
  }).optional(),
  healthCheck: z.object({
    http: z.object({ path: z.string().startsWith('/') }).strict().optional(),
    tcp: z.object({}).strict().optional(),
    interval: Duration.default('10s'),
    timeout: Duration.default('1s'),
    unhealthyThreshold: z.number().int().min(1).max(100).default(3),
    healthyThreshold: z.number().int().min(1).max(100).default(1),
  }).strict().refine((h) => (h.http ? 1 : 0) + (h.tcp ? 1 : 0) === 1, { message: 'set exactly one of http, tcp' }).optional(),
  outlierDetection: z.object({
    consecutive5xx: z.number().int().min(1).optional(),
    consecutiveGatewayErrors: z.number().int().min(1).optional(),
    interval: Duration.default('10s'),
    baseEjectionTime: Duration.default('30s'),
    maxEjectionPercent: Percent.default(50),
  }).strict().optional(),
  circuitBreaker: z.object({
    maxConnections: z.number().int().min(1).optional(),
    maxPendingRequests: z.number().int().min(0).optional(),
    maxRequests: z.number().int().min(1).optional(),
    maxRetries: z.number().int().min(0).optional(),
  }).strict().optional(),
  retryBudget: z.object({
    percent: Percent.default(20),
    minRetriesPerSecond: z.number().min(0).default(10),
  }).strict().optional(),
  rateLimit: z.object({
    requestsPerSecond: z.number().positive(),
    burst: z.number().int().min(1).optional(),
    perSource: z.boolean().default(false),
  }).strict().optional(),
  timeouts: z.object({ connect: Duration.optional(), idle: Duration.optional(), request: Duration.optional() }).strict().optional(),
}).strict();

// ---------- AuthorizationPolicy ----------
const PathPattern = z.string().regex(/^\/[^*]*\*?$/, 'a path is exact, or a prefix ending in "*" such as /admin/*');
export const AuthorizationPolicySpec = z.object({
  targetRef: TargetRef,
  action: z.enum(['ALLOW', 'DENY', 'AUDIT']),
  rules: z.array(z.object({
    from: z.array(z.object({
      services: z.array(Name).optional(),
      identities: z.array(z.string().startsWith('spiffe://')).optional(),
    }).strict()).optional(),
    to: z.array(z.object({
      methods: z.array(z.string().regex(/^[A-Z]+$/)).optional(),
      paths: z.array(PathPattern).optional(),
      ports: z.array(z.number().int().min(1).max(65535)).optional(),
    }).strict()).optional(),
    when: z.array(z.object({
      key: z.string().regex(/^(request\.headers\[[A-Za-z0-9_-]+\]|jwt\.claims\.[A-Za-z0-9_.:-]+)$/, 'key is request.headers[NAME] or jwt.claims.NAME'),
      values: z.array(z.string()).min(1),
    }).strict()).optional(),
  }).strict()).default([]),
}).strict();

// ---------- JWTAuthentication ----------
export const JWTAuthenticationSpec = z.object({
  targetRef: TargetRef,
  issuer: z.string().min(1),
  audiences: z.array(z.string()).optional(),
  jwks: z.object({ uri: z.string().url().optional(), inline: z.string().optional() }).strict()
    .refine((j) => (j.uri ? 1 : 0) + (j.inline ? 1 : 0) === 1, { message: 'set exactly one of uri, inline' }),
  required: z.boolean().default(true),
}).strict();

// ---------- Rollout ----------
export const RolloutSpec = z.object({
  service: Name,
  stable: LabelMap,
  canary: LabelMap,
  steps: z.array(z.number().int().min(0).max(100)).min(1).default([5, 25, 50, 100]),
  interval: Duration.default('1m'),
  analysis: z.object({
    minSuccessRate: Percent.optional(),
    maxP99Latency: Duration.optional(),
    minRequests: z.number().int().min(0).default(20),
  }).strict().optional(),
}).strict().superRefine((r, ctx) => {
  // What the rollout controller (control-plane/core/rollouts.ts) needs to make sense of the spec.
  if (Object.keys(r.stable).length === 0) ctx.addIssue({ code: 'custom', path: ['stable'], message: 'needs at least one label (an empty selector matches every instance)' });
  if (Object.keys(r.canary).length === 0) ctx.addIssue({ code: 'custom', path: ['canary'], message: 'needs at least one label (an empty selector matches every instance)' });
  const overlap = Object.keys(r.canary).every((k) => r.stable[k] === undefined || r.stable[k] === r.canary[k])
    && Object.keys(r.stable).every((k) => r.canary[k] === undefined || r.canary[k] === r.stable[k]);
  if (Object.keys(r.canary).length > 0 && Object.keys(r.stable).length > 0 && overlap) {
    ctx.addIssue({ code: 'custom', path: ['canary'], message: 'must differ from stable in the value of at least one label both name, so no instance matches both' });
  }
  if (isDuration(r.interval)) {
    const ms = parseDuration(r.interval);
    if (ms < 1000 || ms > 3_600_000) ctx.addIssue({ code: 'custom', path: ['interval'], message: 'must be between 1s and 1h' });
  }
  r.steps.forEach((w, i) => {
    if (w < 1) ctx.addIssue({ code: 'custom', path: ['steps', i], message: 'a step sends at least 1% to the canary' });
    else if (i > 0 && w <= r.steps[i - 1]!) ctx.addIssue({ code: 'custom', path: ['steps', i], message: 'steps must increase' });
  });
});

// ---------- the envelope ----------
export const KIND_SPECS = {
  MeshConfig: MeshConfigSpec,
  Service: ServiceSpec,
  HTTPRoute: HTTPRouteSpec,
  TCPRoute: TCPRouteSpec,
  TrafficPolicy: TrafficPolicySpec,
  AuthorizationPolicy: AuthorizationPolicySpec,
  JWTAuthentication: JWTAuthenticationSpec,
  Rollout: RolloutSpec,
} as const;

export type Kind = keyof typeof KIND_SPECS;
export const KINDS = Object.keys(KIND_SPECS) as Kind[];
export const KindName = z.enum(KINDS as [Kind, ...Kind[]]);

function envelope<K extends Kind>(kind: K) {
  return z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(kind),
    metadata: Metadata,
    spec: KIND_SPECS[kind],
  }).strict();
}

export const MeshConfigResource = envelope('MeshConfig').refine((r) => r.metadata.name === 'default', {
  path: ['metadata', 'name'], message: 'the MeshConfig is named "default"',
});
export const ServiceResource = envelope('Service');
export const HTTPRouteResource = envelope('HTTPRoute');
export const TCPRouteResource = envelope('TCPRoute');
export const TrafficPolicyResource = envelope('TrafficPolicy');
export const AuthorizationPolicyResource = envelope('AuthorizationPolicy');
export const JWTAuthenticationResource = envelope('JWTAuthentication');
export const RolloutResource = envelope('Rollout');

export const Resource = z.discriminatedUnion('kind', [
  MeshConfigResource, ServiceResource, HTTPRouteResource, TCPRouteResource,
  TrafficPolicyResource, AuthorizationPolicyResource, JWTAuthenticationResource, RolloutResource,
]);

export type Resource = z.infer<typeof Resource>;
export type ResourceOf<K extends Kind> = Extract<Resource, { kind: K }>;
export type MeshConfigSpec = z.infer<typeof MeshConfigSpec>;
export type ServiceSpec = z.infer<typeof ServiceSpec>;
export type HTTPRouteSpec = z.infer<typeof HTTPRouteSpec>;
export type HTTPRouteRule = z.infer<typeof HTTPRouteRule>;
export type HTTPRouteMatch = z.infer<typeof HTTPRouteMatch>;
export type HTTPRouteFilter = z.infer<typeof HTTPRouteFilter>;
export type BackendRef = z.infer<typeof BackendRef>;
export type TCPRouteSpec = z.infer<typeof TCPRouteSpec>;
export type TrafficPolicySpec = z.infer<typeof TrafficPolicySpec>;
export type AuthorizationPolicySpec = z.infer<typeof AuthorizationPolicySpec>;
export type JWTAuthenticationSpec = z.infer<typeof JWTAuthenticationSpec>;
export type RolloutSpec = z.infer<typeof RolloutSpec>;

export const DEFAULT_MESH_CONFIG: MeshConfigSpec = MeshConfigSpec.parse({});

/** Resources are keyed by kind and name; the MeshConfig is a singleton named "default". */
export function resourceKey(r: { kind: string; metadata: { name: string } }): string {
  return `${r.kind}/${r.metadata.name}`;
}
