/**
 * Active health checking. Every endpoint is probed on its own setTimeout chain: the next probe is
 * scheduled `interval` (+ jitter) after the previous one completes, so a slow endpoint is never probed
 * concurrently with itself. Endpoints start healthy (optimistic, like Linkerd: a new instance is in
 * rotation at once); `unhealthyThreshold` consecutive failures take one out, `healthyThreshold`
 * consecutive successes bring it back.
 */
import { parseDuration } from '../../api/duration.js';
import type { TrafficPolicySpec } from '../../api/schema/resources.js';
import type { EndpointState } from './endpoint-state.js';

export type HealthCheckSpec = NonNullable<TrafficPolicySpec['healthCheck']>;

/** Resolves true when the endpoint is healthy. A rejection (or a synchronous throw) counts as a failure. */
export type Probe = (ep: EndpointState, timeoutMs: number) => Promise<boolean>;

export interface HealthCheckerHooks {
  onChange?(ep: EndpointState, healthy: boolean): void;
  /** Extra delay (ms) added to each interval, to spread probes out; default 0. */
  jitter?: () => number;
}

interface Tracked {
  /** Cleared when the endpoint is removed or the checker stops: a late probe result is then ignored. */
  active: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  failures: number;
  successes: number;
}

const DEFAULTS = { interval: '10s', timeout: '1s', unhealthyThreshold: 3, healthyThreshold: 1 } as const;

export class HealthChecker {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
  private readonly tracked = new Map<EndpointState, Tracked>();
  private stopped = false;

  constructor(readonly spec: HealthCheckSpec, private readonly probe: Probe, private readonly hooks: HealthCheckerHooks = {}) {
    this.intervalMs = parseDuration(spec.interval ?? DEFAULTS.interval);
    this.timeoutMs = parseDuration(spec.timeout ?? DEFAULTS.timeout);
    this.unhealthyThreshold = Math.max(1, spec.unhealthyThreshold ?? DEFAULTS.unhealthyThreshold);
    this.healthyThreshold = Math.max(1, spec.healthyThreshold ?? DEFAULTS.healthyThreshold);
  }

  /**
   * Starts probing endpoints not seen before (first probe right away) and stops probing those no
   * longer listed. Endpoints already known keep their counters and timers. An endpoint's `healthy`
   * flag is left as found (it may carry over from a previous checker of the same endpoint).
   */
  setEndpoints(eps: readonly EndpointState[]): void {
    if (this.stopped) return;
    const wanted = new Set(eps);
    for (const [ep, t] of this.tracked) {
      if (!wanted.has(ep)) {
        this.untrack(t);
        this.tracked.delete(ep);
      }
    }
    for (const ep of wanted) {
      if (this.tracked.has(ep)) continue;
      const t: Tracked = { active: true, timer: undefined, failures: 0, successes: 0 };
      this.tracked.set(ep, t);
      this.run(ep, t);
    }
  }

  /** Clears every timer; no probe starts after this, and results of probes in flight are ignored. */
  stop(): void {
    this.stopped = true;
    for (const t of this.tracked.values()) this.untrack(t);
    this.tracked.clear();
  }

  private untrack(t: Tracked): void {
    t.active = false;
    if (t.timer !== undefined) clearTimeout(t.timer);
    t.timer = undefined;
  }

  private run(ep: EndpointState, t: Tracked): void {
    t.timer = undefined;
    if (!t.active) return;
    void this.probeWithTimeout(ep).then((ok) => {
      if (!t.active) return;
      this.record(ep, t, ok);
      if (!t.active) return; // an onChange hook may have stopped us
      let jitter = 0;
      try {
        jitter = Math.max(0, this.hooks.jitter?.() ?? 0) || 0;
      } catch (err) {
        hookFailed('jitter', err);
      }
      t.timer = unref(setTimeout(() => this.run(ep, t), this.intervalMs + jitter));
    });
  }

  /** The probe raced against the timeout; never rejects. */
  private probeWithTimeout(ep: EndpointState): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let settled = false;
      const finish = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(ok);
      };
      const timer = unref(setTimeout(() => finish(false), this.timeoutMs));
      let pending: Promise<boolean>;
      try {
        pending = this.probe(ep, this.timeoutMs);
      } catch {
        finish(false);
        return;
      }
      Promise.resolve(pending).then((ok) => finish(ok === true), () => finish(false));
    });
  }

  private record(ep: EndpointState, t: Tracked, ok: boolean): void {
    if (ok) {
      t.failures = 0;
      t.successes++;
      if (!ep.healthy && t.successes >= this.healthyThreshold) this.change(ep, true);
    } else {
      t.successes = 0;
      t.failures++;
      if (ep.healthy && t.failures >= this.unhealthyThreshold) this.change(ep, false);
    }
  }

  private change(ep: EndpointState, healthy: boolean): void {
    ep.healthy = healthy;
    try {
      this.hooks.onChange?.(ep, healthy);
    } catch (err) {
      hookFailed('onChange', err); // a faulty hook must not stop health checking
    }
  }
}

function hookFailed(name: string, err: unknown): void {
  process.emitWarning(`health checker ${name} hook threw: ${err instanceof Error ? err.message : String(err)}`);
}

/** Background timers must not keep the process alive (mocked timers may lack unref). */
function unref<T>(timer: T): T {
  const u = (timer as { unref?: () => unknown } | null)?.unref;
  if (typeof u === 'function') u.call(timer);
  return timer;
}
