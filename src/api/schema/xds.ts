/**
 * The xDS-like protocol between proxy and control plane, over HTTP/2 + TLS on the --xds address.
 *
 *   GET  /v1/ca            -> CaInfo              (no client cert; the proxy checks the CA against the token's pin)
 *   POST /v1/certificates  <- CertificateRequest  (join token, or a valid client certificate for renewal)
 *                          -> CertificateResponse
 *   POST /v1/stream        (client certificate required) a bidirectional NDJSON stream:
 *                          proxy -> ProxyMessage, control plane -> ServerMessage.
 *                          Config: `snapshot` (whole) or, for proxies that list `delta` in hello's features,
 *                          `delta` (SnapshotDelta: what changed since the version sent before; a whole snapshot
 *                          after connecting, after a NACK, or when the base is no longer kept).
 *                          Every TRELLIS_STATS_INTERVAL_MS (default 5s) the proxy sends a `stats` message:
 *                          per-interval golden-metrics aggregates (src/proxy/stats.ts), with the interval's
 *                          authorization denials (a few).
 *                          Live tap (src/api/schema/tap.ts): the control plane sends `tap-start`/`tap-stop`;
 *                          while a tap is on, the proxy sends `tap` batches of the requests it matches.
 *                          Several control planes (etcd): `control-planes` (their addresses) to proxies whose
 *                          hello listed the `control-planes` feature.
 */
import { z } from 'zod';
import { LabelMap, Name, Protocol } from './common.js';
import { Snapshot } from './snapshot.js';
import { LATENCY_BUCKETS_MS } from '../latency-buckets.js';
import { DenialEvent, MAX_DENIALS_PER_STATS, MAX_TAP_BATCH, TapEvent } from './tap.js';

export const XDS_PATHS = { ca: '/v1/ca', certificates: '/v1/certificates', stream: '/v1/stream' } as const;

export const CaInfo = z.object({ caPem: z.string(), trustDomain: z.string() }).strict();

export const CertificateRequest = z.object({
  /** PKCS#10 CSR in PEM; its subject and SANs are ignored: identity comes from the token or the current certificate. */
  csr: z.string().min(1),
  token: z.string().optional(),
}).strict();

export const CertificateResponse = z.object({
  certPem: z.string(),
  caPem: z.string(),
  spiffeId: z.string(),
  notAfter: z.string(),
}).strict();

export const InstanceInfo = z.object({
  id: z.string().min(1).max(128),
  service: Name,
  address: z.string().min(1),
  protocol: Protocol,
  labels: LabelMap.default({}),
  version: z.string().optional(),
  /** The proxy's admin listener (loopback: /metrics, /config), for scrape configs. Optional: older proxies omit it. */
  adminAddress: z.string().min(1).optional(),
}).strict();

/** Most rows one stats message carries (one per direction, source, destination, route). */
export const MAX_STATS_ROWS = 1000;

/**
 * Golden-metrics aggregate of one interval for one (direction, source, destination, route).
 * `latency[i]` counts requests with latency ≤ LATENCY_BUCKETS_MS[i] (and above the previous bound);
 * the last element counts those above the last bound.
 */
export const StatsRow = z.object({
  direction: z.enum(['inbound', 'outbound']),
  source: z.string().min(1).max(253),
  destination: z.string().min(1).max(253),
  route: z.string().min(1).max(512),
  requests: z.number().int().nonnegative(),
  /** Status < 500 and no x-trellis-error (no proxy-generated error). */
  successes: z.number().int().nonnegative(),
  latency: z.array(z.number().int().nonnegative()).max(LATENCY_BUCKETS_MS.length + 1),
}).strict();

export const ProxyMessage = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('hello'), instance: InstanceInfo, lastVersion: z.string().optional(), certNotAfter: z.string().optional(),
    /** Protocol features the proxy understands: `delta` (SnapshotDelta messages). Unknown ones are ignored. */
    features: z.array(z.string().min(1).max(32)).max(16).optional(),
  }).strict(),
  z.object({ type: z.literal('ack'), version: z.string() }).strict(),
  z.object({ type: z.literal('nack'), version: z.string(), error: z.string() }).strict(),
  z.object({ type: z.literal('cert'), notAfter: z.string() }).strict(),
  z.object({ type: z.literal('goodbye') }).strict(),
  z.object({
    type: z.literal('stats'),
    /** The interval the rows cover, Unix ms on the proxy's clock. */
    window: z.object({ start: z.number().int().nonnegative(), end: z.number().int().nonnegative() }).strict(),
    rows: z.array(StatsRow).max(MAX_STATS_ROWS),
    /** Requests not counted in this interval because it already had MAX_STATS_ROWS keys. */
    dropped: z.number().int().nonnegative().optional(),
    /** Authorization denials of the interval (at most MAX_DENIALS_PER_STATS; the rest are only counted). */
    denials: z.array(DenialEvent).max(MAX_DENIALS_PER_STATS).optional(),
    /** Denials of the interval beyond MAX_DENIALS_PER_STATS: counted, not sent. */
    denialsDropped: z.number().int().nonnegative().optional(),
  }).strict(),
  z.object({
    type: z.literal('tap'),
    tapId: z.string().min(1).max(64),
    events: z.array(TapEvent).max(MAX_TAP_BATCH),
    /** Matching requests this proxy dropped for this tap since its previous `tap` message (rate or buffer bound). */
    dropped: z.number().int().nonnegative(),
  }).strict(),
]);

export const ServerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('snapshot'), snapshot: z.unknown() }).strict(),
  /** Validated by the proxy with SnapshotDelta (snapshot.ts); only sent to proxies whose hello listed `delta`. */
  z.object({ type: z.literal('delta'), delta: z.unknown() }).strict(),
  z.object({ type: z.literal('error'), error: z.string() }).strict(),
  z.object({
    type: z.literal('tap-start'),
    tapId: z.string().min(1).max(64),
    /** Path prefix and method to match (the service is the proxy's own). */
    path: z.string().optional(),
    method: z.string().optional(),
    /** Most events per second this proxy may report for this tap; the rest are dropped and counted. */
    maxEventsPerSecond: z.number().int().positive(),
  }).strict(),
  z.object({ type: z.literal('tap-stop'), tapId: z.string().min(1).max(64) }).strict(),
  /**
   * The xDS addresses (HOST:PORT) of every live control plane serving the mesh (several share etcd), sent to
   * proxies whose hello listed `control-planes`: after hello and whenever the set changes. The proxy adds them
   * to the addresses it reconnects to when its control plane fails.
   */
  z.object({ type: z.literal('control-planes'), addresses: z.array(z.string().min(1).max(300)).min(1).max(64) }).strict(),
]);

export type CaInfo = z.infer<typeof CaInfo>;
export type CertificateRequest = z.infer<typeof CertificateRequest>;
export type CertificateResponse = z.infer<typeof CertificateResponse>;
export type InstanceInfo = z.infer<typeof InstanceInfo>;
export type ProxyMessage = z.infer<typeof ProxyMessage>;
export type StatsRow = z.infer<typeof StatsRow>;
export type StatsMessage = Extract<ProxyMessage, { type: 'stats' }>;
export type ServerMessage = z.infer<typeof ServerMessage>;
export type TapMessage = Extract<ProxyMessage, { type: 'tap' }>;
export type TapStartMessage = Extract<ServerMessage, { type: 'tap-start' }>;
export { Snapshot };
