/**
 * Live state of one upstream endpoint, shared by the balancers, the active health checker and the
 * outlier detector. It survives config swaps while the endpoint (id + address) stays the same.
 */
import type { Endpoint } from '../../api/schema/snapshot.js';

/** Peak-EWMA decay time constant (ms), as in Finagle/linkerd2-proxy. */
export const EWMA_DECAY_MS = 10_000;

export class EndpointState {
  readonly id: string;
  readonly address: string;
  labels: Readonly<Record<string, string>>;
  draining: boolean;
  /** Requests in flight to this endpoint right now. */
  inflight = 0;
  /** Set by the active health checker. */
  healthy = true;
  /** performance.now() ms until which the outlier detector keeps this endpoint ejected. */
  ejectedUntil = 0;
  /** How many times the outlier detector has ejected it (ejection time grows with this). */
  ejections = 0;
  /** Peak-EWMA latency estimate in ms, and when it was last updated. */
  private ewma = 0;
  private ewmaStamp = 0;

  constructor(endpoint: Endpoint) {
    this.id = endpoint.id;
    this.address = endpoint.address;
    this.labels = endpoint.labels;
    this.draining = endpoint.draining;
  }

  key(): string {
    return `${this.id}@${this.address}`;
  }

  /** Eligible for new requests at time `now` (performance.now() ms). */
  available(now: number): boolean {
    return this.healthy && !this.draining && now >= this.ejectedUntil;
  }

  /** Record an observed latency; peaks are taken at once, decreases decay over EWMA_DECAY_MS. */
  observeLatency(ms: number, now: number): void {
    if (ms > this.ewma) {
      this.ewma = ms;
    } else {
      const elapsed = Math.max(0, now - this.ewmaStamp);
      const w = Math.exp(-elapsed / EWMA_DECAY_MS);
      this.ewma = this.ewma * w + ms * (1 - w);
    }
    this.ewmaStamp = now;
  }

  /** Peak-EWMA cost: latency estimate scaled by outstanding work. */
  cost(): number {
    return (this.ewma || 1) * (this.inflight + 1);
  }

  latencyEstimate(): number {
    return this.ewma;
  }
}
