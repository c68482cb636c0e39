/**
 * GET /api/v1/events as Server-Sent Events (contract.ts EventStreamMessage): the dashboard's live feed.
 *
 *   event: overview  at the start (with `history`) and every intervalMs (default 2 s): a whole Overview;
 *   ": heartbeat"    a comment every HEARTBEAT_MS, so idle proxies and timers do not close the stream.
 *
 * Never waits on the client: while res.write() reports a full socket buffer, overviews are skipped (counted in
 * `onDropped`) until 'drain'; the next one sent is whole, so a slow client only loses freshness and the server holds
 * at most one unsent frame per client. A tick whose previous overview is still being built is skipped too. At most
 * MAX_EVENT_CLIENTS streams are open at once (429 TOO_MANY_STREAMS beyond).
 */
import type http from 'node:http';
import type { EventStreamMessage, Overview } from '../../contract.js';
import { SseResponse } from './sse-response.js';

export const EVENTS_INTERVAL_MS = 2000;
export const EVENTS_HEARTBEAT_MS = 15_000;
export const MAX_EVENT_CLIENTS = 64;

export interface EventStreamOptions {
  intervalMs?: number;
  heartbeatMs?: number;
  maxClients?: number;
  /** An overview was not sent because the client was behind. */
  onDropped?: () => void;
}

export class TooManyStreamsError extends Error {
  readonly code = 'TOO_MANY_STREAMS';
  constructor(max: number) { super(`too many open event streams (at most ${max}): close another dashboard or retry later`); }
}

/** Tracks the open streams (for the bound). One per API server. */
export class EventStreams {
  private readonly open = new Set<SseEventsClient>();
  constructor(private readonly opts: EventStreamOptions = {}) {}

  get size(): number { return this.open.size; }

  /**
   * Starts streaming to `res`: `build(first)` makes each overview (first = true for the first one, which carries the
   * history). Throws TooManyStreamsError before anything is written when the bound is reached.
   */
  start(res: http.ServerResponse, build: (first: boolean) => Promise<Overview>, onError: (err: Error) => void): SseEventsClient {
    const max = this.opts.maxClients ?? MAX_EVENT_CLIENTS;
    if (this.open.size >= max) throw new TooManyStreamsError(max);
    const client = new SseEventsClient(res, build, this.opts, onError, () => this.open.delete(client));
    this.open.add(client);
    client.start();
    return client;
  }

  closeAll(): void {
    for (const c of [...this.open]) c.stop();
  }
}

export class SseEventsClient {
  private readonly sse: SseResponse;
  private building = false;
  private first = true;
  /** Overviews skipped because the client was behind or the previous one was still being built. */
  skipped = 0;

  constructor(
    res: http.ServerResponse,
    private readonly build: (first: boolean) => Promise<Overview>,
    private readonly opts: EventStreamOptions,
    private readonly onError: (err: Error) => void,
    onStop: () => void,
  ) {
    this.sse = new SseResponse(res, { onStop });
  }

  start(): void {
    this.sse.open();
    // Tell EventSource-style clients how soon to reconnect, and flush the headers now.
    this.sse.write('retry: 2000\n\n');
    this.tick();
    this.sse.every(this.opts.intervalMs ?? EVENTS_INTERVAL_MS, () => this.tick());
    this.sse.every(this.opts.heartbeatMs ?? EVENTS_HEARTBEAT_MS, () => { this.sse.write(': heartbeat\n\n'); });
  }

  /** Builds and sends one overview, unless the client is behind or a build is in progress. */
  tick(): void {
    if (this.sse.ended) return;
    if (this.sse.blocked || this.building) {
      this.skipped++;
      this.opts.onDropped?.();
      return;
    }
    this.building = true;
    const first = this.first;
    this.build(first).then((overview) => {
      this.building = false;
      if (this.sse.ended) return;
      const msg: EventStreamMessage = { type: 'overview', overview };
      if (this.sse.write(`event: overview\ndata: ${JSON.stringify(msg)}\n\n`)) this.first = false;
    }, (err: Error) => {
      this.building = false;
      this.onError(err);
    });
  }

  stop(): void {
    this.sse.stop();
  }
}
