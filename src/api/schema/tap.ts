/**
 * Live tap and authorization-denial events: what a proxy reports about single requests.
 *
 * Tap: `trellis tap SERVICE [--path P] [--method M]` (and the dashboard) open GET /api/v1/tap on the control
 * plane, a Server-Sent Events stream. The control plane sends `tap-start` to every connected proxy of SERVICE
 * (and to proxies of SERVICE that connect later), the proxies send back `tap` batches, and `tap-stop` ends it
 * when the client goes away. Every hop is bounded: events per second per proxy, the proxy's batch buffer,
 * the control plane's per-client queue; what a bound drops is counted and reported, never waited for.
 *
 * Denials: proxies report authorization denials with their stats messages (a few per interval); the
 * control plane keeps the most recent ones (GET /api/v1/denials).
 */
import { z } from 'zod';
import { Name } from './common.js';

/** Most events one `tap` message carries. */
export const MAX_TAP_BATCH = 100;
/** Most request headers one tap event carries (values are truncated to MAX_TAP_HEADER_VALUE characters). */
export const MAX_TAP_HEADERS = 64;
export const MAX_TAP_HEADER_VALUE = 256;
/** Most denials one stats message carries. */
export const MAX_DENIALS_PER_STATS = 20;
/** Request headers whose values a tap never shows. */
export const TAP_REDACTED_HEADERS: readonly string[] = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'];

/** What a tap selects on the proxies of `service`: a path prefix and/or an exact method. */
export const TapFilter = z.object({
  service: Name,
  /** Path prefix (of the normalised path, without query), e.g. /api. */
  path: z.string().startsWith('/', 'must start with /').max(1024).optional(),
  /** HTTP method, exact and case-insensitive (gRPC calls are POST). */
  method: z.string().regex(/^[A-Za-z]{1,32}$/, 'must be an HTTP method such as GET').optional(),
}).strict();

export const TapEvent = z.object({
  /** ISO time the request started, on the proxy's clock. */
  at: z.string(),
  /** The reporting proxy's instance id. */
  instance: z.string().max(128),
  direction: z.enum(['inbound', 'outbound']),
  requestId: z.string().max(128).optional(),
  traceId: z.string().max(64).optional(),
  source: z.string().max(253),
  destination: z.string().max(253),
  method: z.string().max(32),
  authority: z.string().max(253).optional(),
  path: z.string().max(2048),
  route: z.string().max(512).optional(),
  status: z.number().int().min(0).max(999),
  /** x-trellis-error code when the proxy answered itself. */
  error: z.string().max(64).optional(),
  latencyMs: z.number().nonnegative(),
  /** Upstream instance address (outbound) or the local app (inbound). */
  upstream: z.string().max(253).optional(),
  retries: z.number().int().nonnegative().optional(),
  /** Request headers as received (lower-case names; redacted and truncated per the bounds above). */
  requestHeaders: z.record(z.string(), z.string()),
}).strict();

export const DenialEvent = z.object({
  at: z.string(),
  instance: z.string().max(128),
  source: z.string().max(253),
  destination: z.string().max(253),
  method: z.string().max(32),
  path: z.string().max(2048),
  /** The deciding policy (absent: the mesh default-deny). */
  policy: z.string().max(253).optional(),
  rule: z.number().int().nonnegative().optional(),
  reason: z.string().max(512),
}).strict();

export type TapFilter = z.infer<typeof TapFilter>;
export type TapEvent = z.infer<typeof TapEvent>;
export type DenialEvent = z.infer<typeof DenialEvent>;
