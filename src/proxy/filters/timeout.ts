/**
 * Timeouts and deadline propagation.
 *
 *  - request-timeout (rule filter, outer): HTTPRoute `timeouts.request`, else the destination's
 *    `TrafficPolicy.timeouts.request`, covers the whole request (fault delays, every retry).
 *  - backend-request-timeout (rule filter, innermost, right before the Router): `timeouts.backendRequest`,
 *    per attempt.
 *  - inbound-deadline (inbound service filter): the caller's remaining time, read from the verified
 *    peer's `x-trellis-deadline` by listeners/ingress.ts, bounds the wait for the local app.
 *
 * Each narrows `req.deadline` (absolute, performance.now() ms) and runs the rest of the chain on a
 * shallow copy of the request whose `signal` also aborts when the deadline passes — that is how the
 * Router's h2Forward (and the AppForwarder) learn to reset the upstream stream. The copy shares
 * headers, body and attrs with the original. A deadline that passes before the response head arrives
 * answers 504 UPSTREAM_TIMEOUT (gRPC: DEADLINE_EXCEEDED); once the head is in, the body streams on.
 *
 * On the wire (upstream/h2-forward.ts, outbound hops only): `x-trellis-deadline: <ms remaining>` for
 * every request, and for gRPC also `grpc-timeout: <ms>m` when smaller than the one the client sent.
 */
import { MeshError } from '../../api/errors.js';
import { parseDuration } from '../../api/duration.js';
import type { RuleFilterFactory, ServiceFilterFactory } from '../pipeline/factory.js';
import type { HeaderMap, HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';

export const DEADLINE_HEADER = 'x-trellis-deadline';

/**
 * Runs next on a copy of req bounded by `deadline`: rejects with UPSTREAM_TIMEOUT and aborts the
 * copy's signal (resetting the upstream stream) if no response head arrived by then.
 */
export function runWithDeadline(req: MeshRequest, next: Next, deadline: number, what: string): Promise<MeshResponse> {
  const remaining = deadline - performance.now();
  if (remaining <= 0) return Promise.reject(new MeshError('UPSTREAM_TIMEOUT', `${what} deadline already passed`));
  const controller = new AbortController();
  const onDownstreamAbort = () => controller.abort(req.signal.reason);
  if (req.signal.aborted) controller.abort(req.signal.reason);
  else req.signal.addEventListener('abort', onDownstreamAbort, { once: true });
  const attempt: MeshRequest = { ...req, deadline, signal: controller.signal };
  return new Promise<MeshResponse>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      req.signal.removeEventListener('abort', onDownstreamAbort);
      controller.abort(new Error('deadline exceeded'));
      reject(new MeshError('UPSTREAM_TIMEOUT', `no response within the ${what} (${Math.round(remaining)}ms)`));
    }, Math.ceil(remaining));
    const settle = () => {
      clearTimeout(timer);
      req.signal.removeEventListener('abort', onDownstreamAbort);
    };
    let result: Promise<MeshResponse>;
    try {
      result = next(attempt);
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (res) => {
        if (timedOut) { res.body?.destroy(); return; }
        settle();
        resolve(res);
      },
      (err: unknown) => {
        if (timedOut) return;
        settle();
        reject(err);
      },
    );
  });
}

class DeadlineFilter implements HttpFilter {
  constructor(readonly name: string, private readonly ms: number, private readonly what: string) {}
  handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    const own = performance.now() + this.ms;
    const deadline = req.deadline !== undefined && req.deadline < own ? req.deadline : own;
    return runWithDeadline(req, next, deadline, this.what);
  }
}

/** Enforces a deadline set upstream of the chain (the inbound caller's), when there is one. */
class InboundDeadline implements HttpFilter {
  readonly name = 'inbound-deadline';
  handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    if (req.deadline === undefined) return next(req);
    return runWithDeadline(req, next, req.deadline, "caller's deadline");
  }
}

export const requestTimeoutFactory: RuleFilterFactory = {
  name: 'request-timeout',
  build(ctx, rule, routeName, service) {
    const text = rule.timeouts?.request ?? ctx.snapshot.clusters[service]?.trafficPolicy?.timeouts?.request;
    if (text === undefined) return null;
    const ms = parseDuration(text);
    if (ms <= 0) return null; // 0s: no timeout (Gateway API / Envoy convention)
    return new DeadlineFilter('request-timeout', ms, `request timeout of ${routeName}`);
  },
};

export const backendRequestTimeoutFactory: RuleFilterFactory = {
  name: 'backend-request-timeout',
  build(_ctx, rule, routeName) {
    const text = rule.timeouts?.backendRequest;
    if (text === undefined) return null;
    const ms = parseDuration(text);
    if (ms <= 0) return null;
    const request = rule.timeouts?.request !== undefined ? parseDuration(rule.timeouts.request) : 0;
    if (request > 0 && ms > request) {
      throw new Error(`HTTPRoute ${routeName}: timeouts.backendRequest (${text}) must not exceed timeouts.request (${rule.timeouts!.request})`);
    }
    return new DeadlineFilter('backend-request-timeout', ms, `backend request timeout of ${routeName}`);
  },
};

export const inboundDeadlineFactory: ServiceFilterFactory = {
  name: 'inbound-deadline',
  build: () => new InboundDeadline(),
};

// ---------- the wire format ----------

const MAX_DEADLINE_MS = 24 * 3_600_000;

/** Parses an x-trellis-deadline value (integer ms remaining); undefined when absent or malformed. */
export function parseDeadlineHeader(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || !/^\d{1,9}$/.test(v)) return undefined;
  return Math.min(Number(v), MAX_DEADLINE_MS);
}

const GRPC_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** Parses a grpc-timeout header ("100m", "2S") into ms; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  const m = v !== undefined ? /^(\d{1,8})([HMSmun])$/.exec(v) : null;
  return m ? Number(m[1]) * GRPC_UNIT_MS[m[2]!]! : undefined;
}

export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  return whole <= 99_999_999 ? `${whole}m` : `${Math.ceil(whole / 1000)}S`;
}

/**
 * The deadline headers an outbound hop adds for the next proxy (nothing without a deadline).
 * Written into the outgoing header set only, so req.headers stays untouched across retries.
 */
export function deadlineHeaders(req: MeshRequest, now = performance.now()): Record<string, string> | undefined {
  if (req.deadline === undefined || req.direction !== 'outbound') return undefined;
  const remaining = Math.max(1, Math.floor(req.deadline - now));
  const out: Record<string, string> = { [DEADLINE_HEADER]: String(remaining) };
  if (req.grpc) {
    const existing = parseGrpcTimeout(req.headers['grpc-timeout']);
    if (existing === undefined || remaining < existing) out['grpc-timeout'] = formatGrpcTimeout(remaining);
  }
  return out;
}

/** Inbound (verified mesh peer): the absolute deadline the caller announced, if any. */
export function inboundDeadline(headers: HeaderMap, now = performance.now()): number | undefined {
  const ms = parseDeadlineHeader(headers[DEADLINE_HEADER]);
  return ms === undefined ? undefined : now + ms;
}
