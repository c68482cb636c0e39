/**
 * The downstream's cancellation of one request, without an AbortController per request.
 *
 * Every MeshRequest has a `signal` that aborts when the downstream goes away. An AbortController (an
 * EventTarget with its own Map of listeners) per request, plus an event listener per upstream hop,
 * was one of the largest per-request allocations of the proxy. A request that enters at a listener
 * gets a DownstreamAbort instead: its `signal` getter creates the AbortController only when some code
 * actually reads it (timeouts, retries, circuit breakers, fault delays), and the forwarders subscribe
 * through `whenAborted`, a plain callback list, so the common request never builds one.
 * Requests copied by filters (`{ ...req, signal }`) carry a real AbortSignal and use it as before.
 */
import type { MeshRequest } from './types.js';

const DOWNSTREAM_ABORT = Symbol('trellis.downstreamAbort');

export class DownstreamAbort {
  aborted = false;
  private controller: AbortController | undefined;
  private listeners: Array<() => void> | undefined;

  /** The AbortSignal, created on first use (already aborted when the downstream left before). */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort();
    }
    return this.controller.signal;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.controller?.abort();
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const fn of listeners) fn();
  }

  listen(fn: () => void): () => void {
    if (this.aborted) { fn(); return noop; }
    (this.listeners ??= []).push(fn);
    return () => {
      const list = this.listeners;
      const i = list ? list.indexOf(fn) : -1;
      if (i >= 0) list!.splice(i, 1);
    };
  }
}

function noop(): void {}

/** Ties `abort` to a request built by a listener (non-enumerable: copies made with spread do not inherit it). */
export function attachDownstreamAbort(req: MeshRequest, abort: DownstreamAbort): void {
  Object.defineProperty(req, DOWNSTREAM_ABORT, { value: abort });
}

/**
 * Calls `fn` once when the request is cancelled (at once if it already is); returns the unsubscribe
 * function. Same meaning as `req.signal.addEventListener('abort', fn, { once: true })`.
 */
export function whenAborted(req: MeshRequest, fn: () => void): () => void {
  const own = (req as { [DOWNSTREAM_ABORT]?: DownstreamAbort })[DOWNSTREAM_ABORT];
  if (own !== undefined) return own.listen(fn);
  const signal = req.signal;
  if (signal.aborted) { fn(); return noop; }
  signal.addEventListener('abort', fn, { once: true });
  return () => signal.removeEventListener('abort', fn);
}
