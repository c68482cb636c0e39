/**
 * The REST API contract of the control plane (request and response bodies), as zod schemas.
 * The API adapter, the OpenAPI document and the SDK's types all derive from these: nothing is written twice.
 * Pure module: no Node imports, safe for the SDK (and a browser dashboard) to import.
 */
import { z } from 'zod';
import { KindName, Resource } from '../api/schema/resources.js';
import { Protocol } from '../api/schema/common.js';
import { DenialEvent, TapEvent } from '../api/schema/tap.js';

export const ErrorBody = z.object({
  /** Stable machine-readable code, e.g. INVALID, NOT_FOUND, UNAUTHENTICATED, REQUEST_TOO_LARGE. */
  error: z.string(),
  message: z.string(),
  /** Present on INVALID: every field path and reason. */
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

export const ApplyRequest = z.object({
  resources: z.array(z.unknown()),
  dryRun: z.boolean().optional(),
}).strict();

export const ApplyAction = z.enum(['created', 'configured', 'unchanged']);
export const ApplyResult = z.object({ kind: KindName, name: z.string(), action: ApplyAction });
export const ApplyResponse = z.object({ dryRun: z.boolean(), results: z.array(ApplyResult) });

export const ResourceList = z.object({ kind: KindName, items: z.array(Resource) });
export const DeleteResponse = z.object({ kind: KindName, name: z.string(), deleted: z.literal(true) });

export const TokenRequest = z.object({
  service: z.string().min(1),
  /** Duration such as 1h or 24h (default 24h). */
  ttl: z.string().optional(),
}).strict();
export const TokenResponse = z.object({ token: z.string(), expiresAt: z.string() });

export const ServiceSummary = z.object({
  name: z.string(),
  protocol: Protocol,
  port: z.number().int().optional(),
  /** Where the service is known from: a Service resource, registered proxies, or both. */
  source: z.enum(['resource', 'registry', 'both']),
  instances: z.number().int(),
  connected: z.number().int(),
});

export const NackInfo = z.object({ version: z.string(), error: z.string(), at: z.string() });

export const ProxyState = z.object({
  instanceId: z.string(),
  service: z.string(),
  address: z.string(),
  protocol: Protocol,
  labels: z.record(z.string(), z.string()),
  proxyVersion: z.string().optional(),
  /** The proxy's admin address (loopback on the proxy's host): /metrics, /config. Absent for proxies that do not report it. */
  adminAddress: z.string().optional(),
  connected: z.boolean(),
  /**
   * Several control planes share etcd: the proxy streams from another one. Its config version and ACK state
   * are that control plane's (versions are per control plane): ask it (GET /api/v1/proxies there).
   */
  connectedElsewhere: z.boolean().optional(),
  connectedAt: z.string().optional(),
  disconnectedAt: z.string().optional(),
  lastSeen: z.string().optional(),
  lastSentVersion: z.string().optional(),
  ackedVersion: z.string().optional(),
  lastNack: NackInfo.optional(),
  certNotAfter: z.string().optional(),
});

export const InstanceView = z.object({
  id: z.string(),
  address: z.string(),
  labels: z.record(z.string(), z.string()),
  protocol: Protocol,
  connected: z.boolean(),
  /** Disconnected (stream closed without goodbye) and waiting for its grace period to end: gets no new traffic. */
  draining: z.boolean(),
  registeredAt: z.string(),
  disconnectedAt: z.string().optional(),
  lastSentVersion: z.string().optional(),
  ackedVersion: z.string().optional(),
  lastNack: NackInfo.optional(),
  certNotAfter: z.string().optional(),
});

export const ServiceDescription = z.object({
  name: z.string(),
  protocol: Protocol,
  port: z.number().int().optional(),
  source: z.enum(['resource', 'registry', 'both']),
  spiffeId: z.string(),
  /** The Service resource, when there is one. */
  resource: Resource.optional(),
  instances: z.array(InstanceView),
  /** HTTPRoutes and TCPRoutes naming the service as parent or backend. */
  routes: z.array(Resource),
  /** TrafficPolicies, AuthorizationPolicies, JWTAuthentications targeting the service. */
  policies: z.array(Resource),
  rollouts: z.array(Resource),
});

export const ProxiesResponse = z.object({
  /** The current config version: a proxy whose ackedVersion equals it is up to date. */
  version: z.string(),
  proxies: z.array(ProxyState),
});

export const StatusResponse = z.object({
  version: z.string(),
  trustDomain: z.string(),
  xdsAddress: z.string(),
  ca: z.object({ pin: z.string(), notAfter: z.string(), pem: z.string() }),
  connectedProxies: z.number().int(),
  certificatesIssued: z.number().int(),
  startedAt: z.string(),
});

export const HealthResponse = z.object({ status: z.string() });

/** One row of golden metrics (GET /api/v1/stats): a service, a route of a service, or an edge source → destination. */
export const StatsRowView = z.object({
  /** The destination service. */
  service: z.string(),
  /** The calling service (by=edge). */
  source: z.string().optional(),
  /** The route (by=route): `HTTPRoute name/rule`, or `default`. */
  route: z.string().optional(),
  /** Whose view the row comes from: the destination's proxies (inbound) or the callers' (outbound). */
  direction: z.enum(['inbound', 'outbound']),
  requests: z.number().int(),
  successes: z.number().int(),
  /** Requests per second over the window (or since stats started arriving, when shorter). */
  rps: z.number(),
  /** successes / requests; a success is status < 500 without a proxy error (x-trellis-error). */
  successRate: z.number(),
  /** Latency quantiles in ms, interpolated in the histogram bucket (LATENCY_BUCKETS_MS). */
  latencyMs: z.object({ p50: z.number(), p95: z.number(), p99: z.number() }),
});

export const StatsResponse = z.object({
  by: z.enum(['service', 'route', 'edge']),
  /** The window asked for, e.g. 1m. */
  window: z.string(),
  windowMs: z.number().int(),
  /** The span rates are computed over (shorter than the window right after the control plane started). */
  coveredMs: z.number().int(),
  service: z.string().optional(),
  /** Control-plane time of the query (ISO). */
  at: z.string(),
  rows: z.array(StatsRowView),
  /** Requests not counted: over a proxy's 1,000 rows per interval or the control plane's series bound. */
  dropped: z.number().int(),
});

/**
 * GET /api/v1/tap?service=S[&path=P][&method=M]: a text/event-stream (Server-Sent Events). Each SSE `data:` is
 * one TapStreamMessage as JSON, with the SSE `event:` field equal to its `type`:
 *   tap     one request seen by a proxy of S (inbound or outbound);
 *   status  every few seconds and whenever it changes: proxies tapped, events dropped so far (any bound).
 * Invalid filters answer 400 INVALID with field paths (before the stream starts); too many concurrent taps 429 TOO_MANY_TAPS.
 */
export const TapStreamMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('tap'), event: TapEvent }),
  z.object({ type: z.literal('status'), instances: z.number().int().nonnegative(), dropped: z.number().int().nonnegative() }),
]);

/** GET /api/v1/denials[?service=S]: the most recent authorization denials (newest first), S as destination. */
export const DenialsResponse = z.object({ denials: z.array(DenialEvent) });

/** One point of a service's golden-metrics time series (the dashboard's small charts). */
export const ServicePoint = z.object({
  service: z.string(),
  rps: z.number(),
  successRate: z.number(),
  p50: z.number(),
  p99: z.number(),
});

/** The golden metrics of every service at one time, each computed over the overview's window ending then. */
export const OverviewHistoryPoint = z.object({ at: z.string(), services: z.array(ServicePoint) });

/**
 * What the dashboard shows, in one message (GET /api/v1/overview, and each `overview` event of GET /api/v1/events):
 * services, golden metrics by service / edge / route over `window`, routes and splits, authorization policies and
 * recent denials, and every proxy's connection, config and certificate state.
 */
export const Overview = z.object({
  /** Control-plane time the overview was computed (ISO). */
  at: z.string(),
  /** The current config version (a proxy whose ackedVersion equals it is in sync). */
  version: z.string(),
  /** The stats window, e.g. 30s. */
  window: z.string(),
  windowMs: z.number().int(),
  /** The span rates are computed over (shorter than the window right after the control plane started). */
  coveredMs: z.number().int(),
  services: z.array(ServiceSummary),
  stats: z.object({
    /** Per destination service (its own proxies' inbound view first). */
    services: z.array(StatsRowView),
    /** Per calling service → destination (the caller's outbound view first). Self-edges are callers outside the mesh entering through the service's own sidecar. */
    edges: z.array(StatsRowView),
    /** Per route of each destination (callers' outbound view). */
    routes: z.array(StatsRowView),
    /** Requests not counted in the window (proxy or control-plane bounds). */
    dropped: z.number().int(),
  }),
  /** HTTPRoutes and TCPRoutes, with their current weights. */
  routes: z.array(Resource),
  authorization: z.object({
    /** MeshConfig authorization.default: what services with no policy do. */
    default: z.enum(['allow', 'deny']),
    policies: z.array(Resource),
    /** The most recent denials, newest first (at most OVERVIEW_DENIALS). */
    denials: z.array(DenialEvent),
    /** How many denials the control plane keeps right now (its ring buffer). */
    denialsKept: z.number().int(),
  }),
  proxies: z.array(ProxyState),
  /**
   * Only in the first event of a stream (and GET /api/v1/overview?history=...): per-service points over the
   * last few minutes, oldest first, so charts do not start empty.
   */
  history: z.object({ stepMs: z.number().int(), points: z.array(OverviewHistoryPoint) }).optional(),
});

/**
 * GET /api/v1/events[?window=30s]: a text/event-stream (Server-Sent Events). `event: overview` carries an Overview as
 * JSON at the start (with `history`) and every ~2 s; a `: heartbeat` comment keeps idle proxies from closing it.
 * A client that does not read fast enough misses overviews (counted in trellis_cp_events_dropped_total): the next one
 * it gets is whole, so nothing but freshness is lost.
 */
export const EventStreamMessage = z.object({ type: z.literal('overview'), overview: Overview });

export type ErrorBody = z.infer<typeof ErrorBody>;
export type ApplyRequest = z.infer<typeof ApplyRequest>;
export type ApplyAction = z.infer<typeof ApplyAction>;
export type ApplyResult = z.infer<typeof ApplyResult>;
export type ApplyResponse = z.infer<typeof ApplyResponse>;
export type ResourceList = z.infer<typeof ResourceList>;
export type DeleteResponse = z.infer<typeof DeleteResponse>;
export type TokenRequest = z.infer<typeof TokenRequest>;
export type TokenResponse = z.infer<typeof TokenResponse>;
export type ServiceSummary = z.infer<typeof ServiceSummary>;
export type NackInfo = z.infer<typeof NackInfo>;
export type ProxyState = z.infer<typeof ProxyState>;
export type InstanceView = z.infer<typeof InstanceView>;
export type ServiceDescription = z.infer<typeof ServiceDescription>;
export type ProxiesResponse = z.infer<typeof ProxiesResponse>;
export type StatusResponse = z.infer<typeof StatusResponse>;
export type HealthResponse = z.infer<typeof HealthResponse>;
export type StatsRowView = z.infer<typeof StatsRowView>;
export type StatsResponse = z.infer<typeof StatsResponse>;
export type TapStreamMessage = z.infer<typeof TapStreamMessage>;
export type DenialsResponse = z.infer<typeof DenialsResponse>;
export type ServicePoint = z.infer<typeof ServicePoint>;
export type OverviewHistoryPoint = z.infer<typeof OverviewHistoryPoint>;
export type Overview = z.infer<typeof Overview>;
export type EventStreamMessage = z.infer<typeof EventStreamMessage>;
