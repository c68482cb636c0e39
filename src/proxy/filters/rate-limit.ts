/**
 * Rate limiting (TrafficPolicy.rateLimit of the DESTINATION service), enforced on the inbound side of
 * that service's proxies (SERVICE_INBOUND), so `perSource` keys on the caller's verified SPIFFE ID
 * (req.source.identity, from its certificate). Each proxy instance limits what it receives.
 *
 * Token bucket: refills at requestsPerSecond, holds at most `burst` (default ceil(requestsPerSecond)).
 * perSource: one bucket per source identity, at most 10k buckets (least recently used evicted).
 * Over the limit: 429 RATE_LIMITED with `retry-after` (whole seconds until a token is back, ≥ 1).
 * Buckets are built once per config version, so a new version starts with full buckets.
 */
import { MeshError } from '../../api/errors.js';
import type { ProxyMetrics } from '../metrics.js';
import type { ServiceFilterFactory } from '../pipeline/factory.js';
import type { HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';

export const MAX_SOURCE_BUCKETS = 10_000;

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly rate: number, private readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes a token; returns 0 when granted, else the seconds (≥ 1) until one is available. */
  take(now: number): number {
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = Math.max(this.last, now);
    this.tokens = Math.min(this.burst, this.tokens + elapsed * this.rate);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - this.tokens) / this.rate));
  }
}

export interface RateLimitSpec { requestsPerSecond: number; burst?: number; perSource?: boolean }

export class RateLimiter {
  readonly burst: number;
  private readonly shared?: TokenBucket;
  private readonly perSource?: Map<string, TokenBucket>;

  constructor(readonly spec: RateLimitSpec, private readonly now: () => number = () => performance.now(), private readonly maxSources = MAX_SOURCE_BUCKETS) {
    this.burst = spec.burst ?? Math.ceil(spec.requestsPerSecond);
    if (spec.perSource) this.perSource = new Map();
    else this.shared = new TokenBucket(spec.requestsPerSecond, this.burst, this.now());
  }

  /** 0 when the request may pass, else retry-after seconds. */
  take(source: string): number {
    const now = this.now();
    if (this.shared) return this.shared.take(now);
    const map = this.perSource!;
    let bucket = map.get(source);
    if (bucket) {
      map.delete(source); // re-insert: Map order is the LRU order
    } else {
      bucket = new TokenBucket(this.spec.requestsPerSecond, this.burst, now);
      if (map.size >= this.maxSources) map.delete(map.keys().next().value!);
    }
    map.set(source, bucket);
    return bucket.take(now);
  }

  get sources(): number {
    return this.perSource?.size ?? 0;
  }
}

export class RateLimitFilter implements HttpFilter {
  readonly name = 'rate-limit';
  constructor(private readonly limiter: RateLimiter, private readonly metrics?: ProxyMetrics) {}

  handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    const retryAfter = this.limiter.take(req.source.identity ?? req.source.service ?? 'unknown');
    if (retryAfter === 0) return next(req);
    this.metrics?.rateLimited.labels({ scope: this.limiter.spec.perSource ? 'source' : 'service' }).inc();
    return Promise.reject(new MeshError('RATE_LIMITED', `rate limit of ${this.limiter.spec.requestsPerSecond}/s exceeded`, {
      headers: { 'retry-after': String(retryAfter) },
    }));
  }
}

export const rateLimitFactory: ServiceFilterFactory = {
  name: 'rate-limit',
  build(ctx, service) {
    const spec = ctx.snapshot.clusters[service]?.trafficPolicy?.rateLimit;
    return spec ? new RateLimitFilter(new RateLimiter(spec), ctx.services.metrics) : null;
  },
};
