/**
 * GET /api/v1/tap as Server-Sent Events (contract.ts TapStreamMessage): one client of one tap session.
 *
 *   event: status  at the start, every STATUS_INTERVAL_MS, and (at most every STATUS_MIN_GAP_MS) when the tapped
 *                  instances or the dropped count change;
 *   event: tap     one per request a proxy reported;
 *   ": heartbeat"  a comment every HEARTBEAT_MS, so idle streams survive proxies and idle timers.
 *
 * Never waits on the client: once res.write() returns false (its socket buffer is full), every frame is dropped —
 * tap events counted into the session's `dropped` — until 'drain'. The proxies' path (core/taps.ts receive) only
 * ever calls `event`, which at worst increments a counter. The session closes when the client goes away.
 */
import type http from 'node:http';
import type { TapStreamMessage } from '../../contract.js';
import type { TapEvent } from '../../../api/schema/tap.js';
import type { TapService, TapSession, TapSubscriber } from '../../core/taps.js';
import { SseResponse } from './sse-response.js';

export const STATUS_INTERVAL_MS = 5000;
export const STATUS_MIN_GAP_MS = 250;
export const HEARTBEAT_MS = 15_000;

export interface TapStreamOptions { statusIntervalMs?: number; heartbeatMs?: number }

export class SseTapClient implements TapSubscriber {
  private session?: TapSession;
  private readonly sse: SseResponse;
  private pendingStatus?: NodeJS.Timeout;
  private lastStatusAt = 0;

  constructor(res: http.ServerResponse, private readonly opts: TapStreamOptions = {}) {
    this.sse = new SseResponse(res, {
      onDrain: () => this.changed(),
      onStop: () => { clearTimeout(this.pendingStatus); this.session?.close(); },
    });
  }

  /** Opens the session (may throw ValidationError / TooManyTapsError before anything is written), then streams. */
  static open(taps: TapService, filter: unknown, res: http.ServerResponse, opts: TapStreamOptions = {}): SseTapClient {
    const client = new SseTapClient(res, opts);
    const session = taps.open(filter, client);
    client.start(session);
    return client;
  }

  private start(session: TapSession): void {
    this.session = session;
    this.sse.open();
    this.sendStatus();
    this.sse.every(this.opts.statusIntervalMs ?? STATUS_INTERVAL_MS, () => this.sendStatus());
    this.sse.every(this.opts.heartbeatMs ?? HEARTBEAT_MS, () => { this.sse.write(': heartbeat\n\n'); });
  }

  event(event: TapEvent): void {
    const session = this.session;
    if (!session || this.sse.ended) return;
    if (this.sse.blocked) { session.countDropped(1); return; }
    const msg: TapStreamMessage = { type: 'tap', event };
    if (!this.sse.write(`event: tap\ndata: ${JSON.stringify(msg)}\n\n`)) session.countDropped(1);
  }

  changed(): void {
    if (!this.session || this.sse.ended || this.pendingStatus) return;
    const wait = Math.max(0, this.lastStatusAt + STATUS_MIN_GAP_MS - Date.now());
    this.pendingStatus = setTimeout(() => { this.pendingStatus = undefined; this.sendStatus(); }, wait);
    this.pendingStatus.unref();
  }

  private sendStatus(): void {
    const session = this.session;
    if (!session || this.sse.ended) return;
    const msg: TapStreamMessage = { type: 'status', instances: session.instances.size, dropped: session.dropped };
    if (this.sse.write(`event: status\ndata: ${JSON.stringify(msg)}\n\n`)) this.lastStatusAt = Date.now();
  }
}
