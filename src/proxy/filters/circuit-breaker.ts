/**
 * Circuit breaking (TrafficPolicy.circuitBreaker), outbound, per destination service, like Envoy's
 * thresholds: an overflow answers 503 CIRCUIT_OPEN at once and never queues.
 *
 * A ServiceFilterFactory in SERVICE_OUTBOUND: the breaker of the service the app called (the chain's
 * destination, i.e. the HTTPRoute parent) counts each downstream request once, from arrival until its
 * response body ends (retries of it are counted against maxRetries instead, by filters/retry.ts).
 *
 *   maxRequests         in-flight requests to the service.
 *   maxConnections +    we hold one multiplexed HTTP/2 session per peer, so "waiting for a connection"
 *   maxPendingRequests  is approximated: capacity = maxConnections × 100 streams (the HTTP/2 default
 *                       concurrency we use); requests in flight beyond that count as pending, and more
 *                       than maxPendingRequests pending overflows. maxConnections alone caps in-flight
 *                       at that capacity (maxPendingRequests defaults to 0 then).
 *   maxRetries          concurrent retries in flight (consulted by the retry filter through
 *                       `circuitBreakerFor`).
 *
 * State is built once per config version (keyed by the snapshot object), so a new version starts
 * from zero counters; requests still running on the old version release on the old breaker.
 */
import { MeshError } from '../../api/errors.js';
import type { Snapshot } from '../../api/schema/snapshot.js';
import type { ProxyMetrics } from '../metrics.js';
import type { ServiceFilterFactory } from '../pipeline/factory.js';
import type { HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';

export const STREAMS_PER_CONNECTION = 100;

export interface CircuitBreakerSpec {
  maxConnections?: number;
  maxPendingRequests?: number;
  maxRequests?: number;
  maxRetries?: number;
}

export type OverflowLimit = 'requests' | 'pending' | 'retries';

export class CircuitBreaker {
  inflight = 0;
  retriesInflight = 0;
  private readonly maxInflight: number;
  private readonly maxRetries: number;

  constructor(readonly service: string, spec: CircuitBreakerSpec, private readonly onOverflow?: (limit: OverflowLimit) => void) {
    this.maxInflight = spec.maxRequests ?? Infinity;
    this.maxRetries = spec.maxRetries ?? Infinity;
    this.pendingCapacity = spec.maxConnections !== undefined
      ? spec.maxConnections * STREAMS_PER_CONNECTION + (spec.maxPendingRequests ?? 0)
      : Infinity;
  }
  private readonly pendingCapacity: number;

  /** Takes a request slot, or throws CIRCUIT_OPEN. The returned function releases it (idempotent). */
  acquire(): () => void {
    if (this.inflight >= this.maxInflight) return this.overflow('requests');
    if (this.inflight >= this.pendingCapacity) return this.overflow('pending');
    this.inflight++;
    let released = false;
    return () => { if (!released) { released = true; this.inflight--; } };
  }

  /** Takes a retry slot; false (and an overflow counted) when maxRetries retries are already running. */
  tryAcquireRetry(): (() => void) | undefined {
    if (this.retriesInflight >= this.maxRetries) {
      this.onOverflow?.('retries');
      return undefined;
    }
    this.retriesInflight++;
    let released = false;
    return () => { if (!released) { released = true; this.retriesInflight--; } };
  }

  private overflow(limit: OverflowLimit): never {
    this.onOverflow?.(limit);
    throw new MeshError('CIRCUIT_OPEN', `circuit breaker of ${this.service} is open (${limit} limit reached)`);
  }
}

const breakers = new WeakMap<Snapshot, Map<string, CircuitBreaker | null>>();

/** The breaker for a destination service in this config version, or undefined without a policy. */
export function circuitBreakerFor(snapshot: Snapshot, service: string, metrics?: ProxyMetrics): CircuitBreaker | undefined {
  let perService = breakers.get(snapshot);
  if (!perService) breakers.set(snapshot, perService = new Map());
  let breaker = perService.get(service);
  if (breaker === undefined) {
    const spec = snapshot.clusters[service]?.trafficPolicy?.circuitBreaker;
    breaker = spec ? new CircuitBreaker(service, spec, (limit) => metrics?.circuitBreakerOverflows.labels({ destination: service, limit }).inc()) : null;
    perService.set(service, breaker);
  }
  return breaker ?? undefined;
}

/** Calls `release` once the response is over: body ended, failed or closed (or no body at all). */
export function onResponseDone(resp: MeshResponse, release: () => void): MeshResponse {
  const body = resp.body;
  if (!body || body.destroyed || body.readableEnded) { release(); return resp; }
  body.once('end', release);
  body.once('error', release);
  body.once('close', release);
  return resp;
}

export class CircuitBreakerFilter implements HttpFilter {
  readonly name = 'circuit-breaker';
  constructor(private readonly breaker: CircuitBreaker) {}

  async handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    const release = this.breaker.acquire();
    req.signal.addEventListener('abort', release, { once: true });
    try {
      return onResponseDone(await next(req), release);
    } catch (err) {
      release();
      throw err;
    }
  }
}

export const circuitBreakerFactory: ServiceFilterFactory = {
  name: 'circuit-breaker',
  build(ctx, service) {
    const breaker = circuitBreakerFor(ctx.snapshot, service, ctx.services.metrics);
    return breaker ? new CircuitBreakerFilter(breaker) : null;
  },
};
