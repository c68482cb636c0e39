/**
 * Passive outlier detection with Envoy's semantics: consecutive 5xx-class outcomes and consecutive
 * gateway errors per endpoint, ejection for baseEjectionTime × (times ejected), capped by
 * maxEjectionPercent, and a sweep every `interval` that restores endpoints whose ejection ended and
 * forgives (decrements the ejection count of) endpoints that were not ejected during the last interval.
 */
import { parseDuration } from '../../api/duration.js';
import type { TrafficPolicySpec } from '../../api/schema/resources.js';
import type { EndpointState } from './endpoint-state.js';

export type OutlierSpec = NonNullable<TrafficPolicySpec['outlierDetection']>;

/** gateway-error: 502/503/504 from upstream, connect failure, reset, timeout. */
export type Outcome = 'success' | 'error-5xx' | 'gateway-error';

export interface OutlierDetectorOptions {
  /** Clock in ms, same base as EndpointState.ejectedUntil; default performance.now. */
  now?: () => number;
  onEject?(ep: EndpointState, durationMs: number): void;
  onRestore?(ep: EndpointState): void;
  /** Upper bound of one ejection (Envoy's max_ejection_time); default max(300s, baseEjectionTime). */
  maxEjectionTimeMs?: number;
}

interface Tracked {
  consecutive5xx: number;
  consecutiveGateway: number;
  /** Ejected and not yet restored (onRestore pending). */
  ejected: boolean;
  /** Ejected or restored since the last sweep: not forgiven by the next one. */
  touched: boolean;
}

const DEFAULT_MAX_EJECTION_MS = 300_000;

export class OutlierDetector {
  readonly intervalMs: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
  private readonly now: () => number;
  private readonly tracked = new Map<EndpointState, Tracked>();
  private timer: ReturnType<typeof setInterval> | undefined;
  /** A threshold is configured and stop() has not been called. */
  private active: boolean;

  constructor(readonly spec: OutlierSpec, private readonly opts: OutlierDetectorOptions = {}) {
    this.intervalMs = parseDuration(spec.interval ?? '10s');
    this.baseEjectionMs = parseDuration(spec.baseEjectionTime ?? '30s');
    this.maxEjectionMs = opts.maxEjectionTimeMs ?? Math.max(DEFAULT_MAX_EJECTION_MS, this.baseEjectionMs);
    this.maxEjectionPercent = spec.maxEjectionPercent ?? 50;
    this.now = opts.now ?? (() => performance.now());
    this.active = spec.consecutive5xx !== undefined || spec.consecutiveGatewayErrors !== undefined;
    if (this.active) {
      this.timer = setInterval(() => this.sweep(), this.intervalMs);
      const u = (this.timer as { unref?: () => unknown } | null)?.unref;
      if (typeof u === 'function') u.call(this.timer);
    }
  }

  /** Tracks exactly these endpoints; known ones keep their counters. */
  setEndpoints(eps: readonly EndpointState[]): void {
    const wanted = new Set(eps);
    for (const ep of this.tracked.keys()) if (!wanted.has(ep)) this.tracked.delete(ep);
    const now = this.now();
    for (const ep of wanted) {
      if (this.tracked.has(ep)) continue;
      // An ejection carried over from a previous detector is restored by this one's sweep.
      this.tracked.set(ep, { consecutive5xx: 0, consecutiveGateway: 0, ejected: now < ep.ejectedUntil, touched: false });
    }
  }

  /** Records one request outcome. Cheap: a map lookup and a counter update. */
  record(ep: EndpointState, outcome: Outcome): void {
    const t = this.tracked.get(ep);
    if (t === undefined) return;
    if (outcome === 'success') {
      t.consecutive5xx = 0;
      t.consecutiveGateway = 0;
      return;
    }
    if (!this.active) return; // no threshold configured, or stopped
    const now = this.now();
    if (t.ejected) {
      // Late results of requests sent before the ejection do not count against it again.
      if (now < ep.ejectedUntil) return;
      this.restore(ep, t);
    }
    t.consecutive5xx++;
    if (outcome === 'gateway-error') t.consecutiveGateway++;
    else t.consecutiveGateway = 0; // Envoy: a non-gateway 5xx breaks a run of gateway errors
    const c5xx = this.spec.consecutive5xx;
    const cGw = this.spec.consecutiveGatewayErrors;
    if ((c5xx !== undefined && t.consecutive5xx >= c5xx) || (cGw !== undefined && t.consecutiveGateway >= cGw)) {
      this.tryEject(ep, t, now);
    }
  }

  /** Stops the sweep. Ejections in progress still end on their own (ejectedUntil). */
  stop(): void {
    this.active = false;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Endpoints currently ejected (for status pages). */
  ejectedCount(now = this.now()): number {
    let n = 0;
    for (const ep of this.tracked.keys()) if (now < ep.ejectedUntil) n++;
    return n;
  }

  private tryEject(ep: EndpointState, t: Tracked, now: number): void {
    const total = this.tracked.size;
    const ejected = this.ejectedCount(now);
    const max = this.maxEjectionPercent;
    const allowed = ((ejected + 1) / total) * 100 <= max || (max > 0 && total >= 2 && ejected === 0);
    // Either way the run of errors is consumed, as in Envoy (counters reset on the ejection attempt).
    t.consecutive5xx = 0;
    t.consecutiveGateway = 0;
    if (!allowed) return;
    ep.ejections += 1;
    const duration = Math.min(this.baseEjectionMs * ep.ejections, this.maxEjectionMs);
    ep.ejectedUntil = now + duration;
    t.ejected = true;
    t.touched = true;
    try {
      this.opts.onEject?.(ep, duration);
    } catch (err) {
      hookFailed('onEject', err);
    }
  }

  private restore(ep: EndpointState, t: Tracked): void {
    t.ejected = false;
    t.touched = true;
    try {
      this.opts.onRestore?.(ep);
    } catch (err) {
      hookFailed('onRestore', err); // runs in a timer: a throw would crash the process
    }
  }

  /** Runs every interval; exposed for tests and callers that drive time themselves. */
  sweep(): void {
    const now = this.now();
    for (const [ep, t] of this.tracked) {
      const ejectedLastInterval = t.ejected || t.touched;
      t.touched = false;
      if (t.ejected) {
        if (now >= ep.ejectedUntil) {
          this.restore(ep, t);
          t.touched = false; // restored at a sweep: forgiven from the next one on, as in Envoy
        }
      } else if (!ejectedLastInterval && ep.ejections > 0) {
        ep.ejections--;
      }
    }
  }
}

function hookFailed(name: string, err: unknown): void {
  process.emitWarning(`outlier detector ${name} hook threw: ${err instanceof Error ? err.message : String(err)}`);
}
