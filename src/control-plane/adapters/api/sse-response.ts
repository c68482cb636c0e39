/**
 * One Server-Sent Events response that never waits on its client, shared by the API's streams (tap-stream.ts,
 * events-stream.ts): the SSE headers, a drop-don't-wait `write`, unref'd periodic timers, and one `stop` on
 * close/error/end.
 *
 * Once res.write() reports a full socket buffer, `blocked` is true and every further frame is refused (write returns
 * false, for the caller to count) until 'drain'; so a slow client costs at most the one frame already queued.
 */
import type http from 'node:http';

export interface SseResponseHooks {
  /** The socket drained after a refusal: frames are accepted again. */
  onDrain?: () => void;
  /** The stream ended (client gone, error, or stop()); called once. */
  onStop?: () => void;
}

export class SseResponse {
  blocked = false;
  ended = false;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly res: http.ServerResponse, private readonly hooks: SseResponseHooks = {}) {}

  /** Sends the status line and SSE headers and ties the stream's end to the response's close/error. */
  open(): void {
    const res = this.res;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    const stop = () => this.stop();
    res.on('close', stop);
    res.on('error', stop);
  }

  /** Runs fn every ms until the stream ends (the timer never keeps the process alive). */
  every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  /** Writes a frame unless the client is behind or gone; false = not written. */
  write(frame: string): boolean {
    const res = this.res;
    if (this.blocked || this.ended || res.destroyed || res.writableEnded) return false;
    if (!res.write(frame)) {
      this.blocked = true;
      res.once('drain', () => { this.blocked = false; this.hooks.onDrain?.(); });
    }
    return true;
  }

  stop(): void {
    if (this.ended) return;
    this.ended = true;
    for (const t of this.timers) clearInterval(t);
    this.hooks.onStop?.();
    if (!this.res.writableEnded) this.res.end();
  }
}
