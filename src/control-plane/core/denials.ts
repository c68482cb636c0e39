/**
 * The most recent authorization denials reported by the proxies (with their `stats` messages), for
 * GET /api/v1/denials. A ring buffer of `capacity` (default 200): the oldest is forgotten first.
 * The reporting connection is authoritative: `instance` and `destination` (the denying proxy's own
 * service) are taken from it, not from the message.
 * Pure: no timers, no Node imports.
 */
import type { DenialEvent } from '../../api/schema/tap.js';

export const DEFAULT_DENIALS_KEPT = 200;

export class DenialLog {
  private readonly ring: (DenialEvent | undefined)[];
  private next = 0;
  private count = 0;
  /** Denials proxies counted but did not send (over their per-interval bound). */
  unreported = 0;

  constructor(readonly capacity = DEFAULT_DENIALS_KEPT) {
    this.ring = new Array<DenialEvent | undefined>(capacity);
  }

  record(service: string, instanceId: string, denials: readonly DenialEvent[], unreported = 0): void {
    this.unreported += unreported;
    for (const d of denials) {
      this.ring[this.next] = { ...d, instance: instanceId, destination: service };
      this.next = (this.next + 1) % this.capacity;
      this.count = Math.min(this.capacity, this.count + 1);
    }
  }

  /** Newest first; only those with `service` as destination when given. */
  list(service?: string): DenialEvent[] {
    const out: DenialEvent[] = [];
    for (let i = 1; i <= this.count; i++) {
      const d = this.ring[(this.next - i + this.capacity) % this.capacity]!;
      if (service === undefined || d.destination === service) out.push(d);
    }
    return out;
  }
}
