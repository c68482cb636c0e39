/**
 * Sends a MeshRequest as one HTTP/1.1 exchange on a keep-alive connection pool (undici, see
 * undici-pool.ts) and resolves with the response head; the body streams through with backpressure.
 * Used for the local HTTP/1.1 app (app-forwarder.ts) and for proxy→proxy hops to HTTP/1.1 services
 * over the mTLS pool of peer-pool.ts.
 *
 * Failures that left nothing at the upstream are flagged `refused` (the router may then try another
 * endpoint): a connection that could not be made (the pool only reads the body once a connection is
 * up, so it is still unread), and a reused keep-alive connection the upstream had already closed
 * (reset or closed before any byte of this response: RFC 9112 §9.3.1's retry case).
 */
import net from 'node:net';
import { Readable } from 'node:stream';
import { MeshError } from '../../api/errors.js';
import { HOP_BY_HOP } from '../http/headers.js';
import { deadlineHeaders } from '../filters/timeout.js';
import { whenAborted } from '../pipeline/abort.js';
import type { HeaderMap, MeshRequest, MeshResponse } from '../pipeline/types.js';
import type { ForwardObserver } from './h2-forward.js';
import { bytesReadBefore, createPool, headerName, noteBytesReadOnError, POOL_DEFAULTS, type Dispatcher, type Pool } from './undici-pool.js';

export interface H1Target {
  pool: Dispatcher;
  /** Names the upstream in error messages ("app 127.0.0.1:8080", "peer 10.0.0.2:15006"). */
  label: string;
  /**
   * The upstream is a Trellis inbound, which never sends a body with a HEAD response: its connection
   * stays open after one. (undici closes it by default, for servers that do; apps keep that default.)
   */
  headKeepsConnection?: boolean;
}

/** A pool of plain TCP connections to host:port (the local app), no Nagle. */
export function plainPool(host: string, port: number, connectTimeoutMs: number, options: Pool.Options = {}): Pool {
  return createPool(`http://${host}:${port}`, {
    ...POOL_DEFAULTS,
    ...options,
    connect: (_opts, callback) => {
      const socket = net.connect({ host, port });
      noteBytesReadOnError(socket);
      let connected = false;
      const timer = setTimeout(() => socket.destroy(new Error(`connect timed out after ${connectTimeoutMs}ms`)), connectTimeoutMs);
      socket.once('connect', () => { clearTimeout(timer); connected = true; socket.setNoDelay(true); callback(null, socket); });
      socket.once('error', (err) => { clearTimeout(timer); if (!connected) callback(err, null); });
    },
  });
}

const STALE_CONNECTION_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

export function h1Forward(target: H1Target, req: MeshRequest, observer?: ForwardObserver): Promise<MeshResponse> {
  // Header lines as the pool takes them, [name, value, ...]: no intermediate object per request.
  const headers: Array<string | string[]> = [];
  const from = req.headers;
  for (const name in from) {
    // Expect is not forwarded (the downstream listener already answered 100-continue); Host is per hop.
    if (name === 'expect' || name === 'host') continue;
    headers.push(name, from[name]!);
  }
  const deadline = deadlineHeaders(req);
  if (deadline !== undefined) for (const name in deadline) headers.push(name, deadline[name]!);
  headers.push('host', req.authority);
  let body: AsyncIterable<Buffer> | null = null;
  if (req.emptyBody) req.body.resume(); // drained so it ends; the request goes out without body framing
  // An iterator that leaves the stream open when the pool stops early: a failed upstream must not
  // destroy the downstream request (and with it the connection the error response goes back on).
  else body = req.body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
  return new Promise((resolve, reject) => {
    const exchange = new H1Exchange(target.label, req, observer, resolve, reject);
    // (undici takes async iterables as bodies; its typings list only the other kinds)
    target.pool.dispatch({
      method: req.method as Dispatcher.HttpMethod, path: req.path, headers: headers as unknown as string[], body: body as Dispatcher.DispatchOptions['body'],
      ...(target.headKeepsConnection === true && req.method === 'HEAD' ? { reset: false } : undefined),
    }, exchange);
  });
}

/** One exchange's undici handler: response head → MeshResponse, body chunks → its Readable. */
class H1Exchange implements Dispatcher.DispatchHandlers {
  private abortUpstream: ((err?: Error) => void) | undefined;
  private cancelled: Error | undefined;
  private body: UpstreamBody | undefined;
  private status: number | undefined;
  private trailers: HeaderMap | undefined;
  /** The first byte of this exchange's response arrived (so a reset is not a stale connection's). */
  private responseStarted = false;
  private finished = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly label: string,
    req: MeshRequest,
    private readonly observer: ForwardObserver | undefined,
    private readonly resolve: (res: MeshResponse) => void,
    private readonly reject: (err: MeshError) => void,
  ) {
    // The request's cancellation (downstream gone, deadline passed) aborts the upstream exchange.
    this.unsubscribe = whenAborted(req, () => this.cancel(new Error('request aborted')));
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.cancelled) abort(this.cancelled);
  }

  onResponseStarted(): void {
    this.responseStarted = true;
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    if (status < 200 || this.status !== undefined) return true; // 1xx: informational, not forwarded
    this.status = status;
    const { fields: headers, hasTrailers } = fieldsOf(raw, true);
    const body = new UpstreamBody(resume, (err) => this.abortUpstream?.(err));
    this.body = body;
    this.resolve({ status, headers, body, trailers: hasTrailers ? () => this.trailers : undefined });
    return true;
  }

  onData(chunk: Buffer): boolean {
    return this.body!.push(chunk);
  }

  onComplete(trailers: Array<Buffer | string> | null): void {
    if (trailers && trailers.length > 0) this.trailers = fieldsOf(trailers, false).fields;
    this.body!.complete = true;
    this.body!.push(null);
    this.finish(undefined);
  }

  onError(err: Error): void {
    if (this.status !== undefined) {
      this.body!.destroy(err);
      this.finish(err);
      return;
    }
    const failure = this.classify(err);
    this.finish(failure);
    this.reject(failure);
  }

  private cancel(err: Error): void {
    this.cancelled = err;
    if (this.abortUpstream) this.abortUpstream(err);
    else if (this.status === undefined && !this.finished) {
      // Still waiting for a connection: settle now; the pool drops it when its turn comes (onConnect).
      this.finish(err);
      this.reject(new MeshError('UPSTREAM_RESET', `${this.label}: ${err.message}`));
    }
  }

  private classify(err: Error): MeshError {
    if (err instanceof MeshError) return err;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    // The pool refused the request itself (a header it cannot send): no endpoint would take it.
    if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') return new MeshError('BAD_REQUEST', `${this.label}: ${err.message}`);
    if (this.abortUpstream === undefined) {
      // No connection was ever handed over: nothing was sent (this includes a pool shutting down).
      return new MeshError('UPSTREAM_CONNECT_FAILED', `${this.label}: ${err.message}`, { refused: true });
    }
    // Stale: the connection failed before any byte of this response, after carrying earlier ones.
    const stale = !this.responseStarted && STALE_CONNECTION_ERRORS.has(code) && (bytesReadBefore(err) ?? 0) > 0;
    return new MeshError('UPSTREAM_RESET', `${this.label}: ${err.message}`, { refused: stale });
  }

  private finish(err: Error | undefined): void {
    if (this.finished) return;
    this.finished = true;
    this.unsubscribe();
    this.observer?.done(this.status, err);
  }
}

/** The response body as the pool delivers it: reading on resumes the pool, destroying aborts the exchange. */
class UpstreamBody extends Readable {
  complete = false;

  constructor(private readonly resumeUpstream: () => void, private readonly abortUpstream: (err: Error) => void) {
    super();
  }

  override _read(): void {
    this.resumeUpstream();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (!this.complete) this.abortUpstream(err ?? new Error('response body discarded'));
    callback(err);
  }
}

/**
 * Raw header lines → a HeaderMap, in one pass: names lower-cased, values as latin1 (byte for byte),
 * repeated Set-Cookie kept as a list and other repeated fields joined (RFC 9110 §5.3). `hopByHop`
 * drops the connection's own fields and those the Connection field names (response heads);
 * trailers keep everything.
 */
function fieldsOf(raw: Array<Buffer | string>, hopByHop: boolean): { fields: HeaderMap; hasTrailers: boolean } {
  const fields: HeaderMap = {};
  let connection: string | undefined;
  let hasTrailers = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = headerName(raw[i]!);
    const value = raw[i + 1]!.toString('latin1');
    if (hopByHop && HOP_BY_HOP.has(name)) {
      if (name === 'connection') connection = connection === undefined ? value : `${connection}, ${value}`;
      else if (name === 'trailer') hasTrailers = true;
      continue;
    }
    const prev = fields[name];
    if (prev === undefined) fields[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(prev)) prev.push(value);
    else if (name !== 'content-length') fields[name] = `${prev}, ${value}`;
  }
  if (connection !== undefined) {
    for (const token of connection.split(',')) {
      const named = token.trim().toLowerCase();
      if (named !== '' && named !== 'close' && named !== 'keep-alive') delete fields[named];
    }
  }
  return { fields, hasTrailers };
}
