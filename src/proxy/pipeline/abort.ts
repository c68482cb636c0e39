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
 * Requests built elsewhere (tests, route explain) are plain objects with a real AbortSignal.
 */
import type { MeshRequest } from './types.js';

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

/**
 * A request as a listener builds it: plain own fields, and `signal` computed on first read from the
 * DownstreamAbort (kept in a private field, so copies made with spread do not carry it: a copy always
 * sets its own `signal`, see MeshRequest). A class rather than an object literal with a getter, which
 * V8 cannot create from a boilerplate (measured ≈2 µs per request, with the defineProperty it needed).
 */
export class ListenerRequest implements MeshRequest {
  readonly #abort: DownstreamAbort;
  deadline: number | undefined = undefined;
  readonly attrs: MeshRequest['attrs'] = {};
  readonly startedAt = performance.now();

  constructor(
    abort: DownstreamAbort,
    readonly direction: MeshRequest['direction'],
    public method: string,
    public path: string,
    public authority: string,
    public headers: MeshRequest['headers'],
    public body: MeshRequest['body'],
    readonly emptyBody: boolean,
    public protocol: MeshRequest['protocol'],
    readonly grpc: boolean,
    readonly source: MeshRequest['source'],
    public destination: string,
    readonly requestId: string,
  ) {
    this.#abort = abort;
  }

  get signal(): AbortSignal { return this.#abort.signal; }

  static downstreamAbortOf(req: MeshRequest): DownstreamAbort | undefined {
    return #abort in req ? (req as ListenerRequest).#abort : undefined;
  }
}

/**
 * Calls `fn` once when the request is cancelled (at once if it already is); returns the unsubscribe
 * function. Same meaning as `req.signal.addEventListener('abort', fn, { once: true })`.
 */
export function whenAborted(req: MeshRequest, fn: () => void): () => void {
  const own = ListenerRequest.downstreamAbortOf(req);
  if (own !== undefined) return own.listen(fn);
  const signal = req.signal;
  if (signal.aborted) { fn(); return noop; }
  signal.addEventListener('abort', fn, { once: true });
  return () => signal.removeEventListener('abort', fn);
}
