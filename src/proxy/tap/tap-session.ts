/**
 * One tap on this proxy (from a `tap-start`): what it matches, its per-second token bucket, its bounded batch
 * buffer, what it dropped since its last report, and when it expires if no `tap-stop` (or refresh) arrives.
 */
import { MAX_TAP_BATCH, type TapEvent } from '../../api/schema/tap.js';
import type { TapStartMessage } from '../../api/schema/xds.js';

/** A tap with no tap-stop and no refreshing tap-start ends by itself after this long. */
export const TAP_SESSION_TTL_MS = 10 * 60_000;

/**
 * Most (estimated) characters of events in one batch: keeps a `tap` message well under the control plane's
 * 1 MiB line bound even when every event carries 64 long headers (100 such events would not fit).
 */
export const MAX_TAP_BATCH_CHARS = 192 * 1024;

export type TapDropReason = 'rate' | 'buffer' | 'backpressure';

export class TapSession {
  readonly id: string;
  private pathPrefix: string | undefined;
  private method: string | undefined;
  private ratePerSecond: number;
  private tokens: number;
  private refilledAt: number;
  expiresAt: number;
  /** Events waiting for the next flush (at most MAX_TAP_BATCH). */
  events: TapEvent[] = [];
  /** Estimated size of `events` (tap-hub.ts estimateChars). */
  chars = 0;
  /** Matching requests not reported since the last `tap` message sent. */
  dropped = 0;

  constructor(msg: TapStartMessage, now: number, private readonly maxBatch = MAX_TAP_BATCH) {
    this.id = msg.tapId;
    this.pathPrefix = msg.path;
    this.method = msg.method?.toUpperCase();
    this.ratePerSecond = msg.maxEventsPerSecond;
    this.tokens = msg.maxEventsPerSecond;
    this.refilledAt = now;
    this.expiresAt = now + TAP_SESSION_TTL_MS;
  }

  /** A repeated tap-start for the same id: new filter and rate, a new lifetime; buffered events are kept. */
  refresh(msg: TapStartMessage, now: number): void {
    this.pathPrefix = msg.path;
    this.method = msg.method?.toUpperCase();
    this.ratePerSecond = msg.maxEventsPerSecond;
    this.tokens = Math.min(this.tokens, this.ratePerSecond);
    this.expiresAt = now + TAP_SESSION_TTL_MS;
  }

  /** `method` upper-cased, `path` without its query. */
  matches(method: string, path: string): boolean {
    if (this.method !== undefined && this.method !== method) return false;
    return this.pathPrefix === undefined || path.startsWith(this.pathPrefix);
  }

  /** Takes one token of the per-second bucket (capacity = one second of events). */
  admit(now: number): boolean {
    const elapsed = now - this.refilledAt;
    if (elapsed > 0) {
      this.tokens = Math.min(this.ratePerSecond, this.tokens + (elapsed * this.ratePerSecond) / 1000);
      this.refilledAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  get full(): boolean { return this.events.length >= this.maxBatch || this.chars >= MAX_TAP_BATCH_CHARS; }

  push(event: TapEvent, chars: number): void {
    this.events.push(event);
    this.chars += chars;
  }

  /** Takes the buffered events and the drop count for one `tap` message. */
  take(): { events: TapEvent[]; dropped: number } {
    const out = { events: this.events, dropped: this.dropped };
    this.events = [];
    this.chars = 0;
    this.dropped = 0;
    return out;
  }
}
