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

export const STATUS_INTERVAL_MS = 5000;
export const STATUS_MIN_GAP_MS = 250;
export const HEARTBEAT_MS = 15_000;

export interface TapStreamOptions { statusIntervalMs?: number; heartbeatMs?: number }

export class SseTapClient implements TapSubscriber {
  private session?: TapSession;
  private blocked = false;
  private ended = false;
  private timers: NodeJS.Timeout[] = [];
  private pendingStatus?: NodeJS.Timeout;
  private lastStatusAt = 0;

  constructor(private readonly res: http.ServerResponse, private readonly opts: TapStreamOptions = {}) {}

  /** Opens the session (may throw ValidationError / TooManyTapsError before anything is written), then streams. */
  static open(taps: TapService, filter: unknown, res: http.ServerResponse, opts: TapStreamOptions = {}): SseTapClient {
    const client = new SseTapClient(res, opts);
    const session = taps.open(filter, client);
    client.start(session);
    return client;
  }

  private start(session: TapSession): void {
    this.session = session;
    const res = this.res;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    this.sendStatus();
    const every = (ms: number, fn: () => void) => { const t = setInterval(fn, ms); t.unref(); this.timers.push(t); };
    every(this.opts.statusIntervalMs ?? STATUS_INTERVAL_MS, () => this.sendStatus());
    every(this.opts.heartbeatMs ?? HEARTBEAT_MS, () => { this.write(': heartbeat\n\n'); });
    const stop = () => this.stop();
    res.on('close', stop);
    res.on('error', stop);
  }

  event(event: TapEvent): void {
    const session = this.session;
    if (!session || this.ended) return;
    if (this.blocked) { session.countDropped(1); return; }
    const msg: TapStreamMessage = { type: 'tap', event };
    if (!this.write(`event: tap\ndata: ${JSON.stringify(msg)}\n\n`)) session.countDropped(1);
  }

  changed(): void {
    if (!this.session || this.ended || this.pendingStatus) return;
    const wait = Math.max(0, this.lastStatusAt + STATUS_MIN_GAP_MS - Date.now());
    this.pendingStatus = setTimeout(() => { this.pendingStatus = undefined; this.sendStatus(); }, wait);
    this.pendingStatus.unref();
  }

  private sendStatus(): void {
    const session = this.session;
    if (!session || this.ended) return;
    const msg: TapStreamMessage = { type: 'status', instances: session.instances.size, dropped: session.dropped };
    if (this.write(`event: status\ndata: ${JSON.stringify(msg)}\n\n`)) this.lastStatusAt = Date.now();
  }

  /** Writes a frame unless the client is behind; false = not written. */
  private write(frame: string): boolean {
    const res = this.res;
    if (this.blocked || this.ended || res.destroyed || res.writableEnded) return false;
    if (!res.write(frame)) {
      this.blocked = true;
      res.once('drain', () => { this.blocked = false; this.changed(); });
    }
    return true;
  }

  private stop(): void {
    if (this.ended) return;
    this.ended = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.pendingStatus);
    this.session?.close();
    if (!this.res.writableEnded) this.res.end();
  }
}
