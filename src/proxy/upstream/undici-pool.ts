/**
 * undici's connection Pool: the HTTP/1.1 client of both upstream hops (h1-forward.ts), the local app
 * (app-forwarder.ts) and other proxies over mTLS (peer-pool.ts).
 *
 * Why undici rather than node:http's client: on a bare Node.js proxy pair it cut the CPU per request
 * of each proxy by about a third (docs/performance.md, "Third round"): node:http's Agent and
 * ClientRequest do per-request work a proxy does not need (pool-name strings, socket keep-alive and
 * timer resets, an IncomingMessage stream per response). undici is the Node.js project's own HTTP
 * client, with the llhttp parser.
 *
 * Loaded from its own module rather than the package index, which also loads fetch, WebSocket and
 * caches (+19 MiB of RSS instead of +13, measured by bench/proxy-rss.ts), and only by a proxy that
 * needs it: its app speaks HTTP/1.1, a config names an HTTP/1.1 service (runtime/optional-modules.ts),
 * or it exports spans (tracing/otlp-exporter.ts).
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Dispatcher, Pool } from 'undici';

export type { Dispatcher, Pool };

const load = createRequire(import.meta.url);
let PoolClass: typeof Pool | undefined;
let nameOf: ((raw: Buffer | string) => string) | undefined;

/**
 * Loads the client (and starts compiling its parser) ahead of the first request: called when a config
 * has an HTTP/1.1 service or the local app speaks HTTP/1.1, so no request waits for it (≈20 ms once).
 */
export function loadHttp1Client(): typeof Pool {
  PoolClass ??= load('undici/lib/dispatcher/pool.js') as typeof Pool;
  return PoolClass;
}

export function createPool(origin: string, options: Pool.Options): Pool {
  return new (loadHttp1Client())(origin, options);
}

/** A raw header name, lower-cased; well-known names come from undici's table of interned strings. */
export function headerName(raw: Buffer | string): string {
  nameOf ??= (load('undici/lib/core/util.js') as { headerNameToString: (raw: Buffer | string) => string }).headerNameToString;
  return nameOf(raw);
}

/**
 * Options every upstream pool shares: no header or body timeouts of the client's own (deadlines are
 * the timeout filter's, and a response may stream for as long as it likes), one request per
 * connection at a time (no pipelining, so a failure never touches a second request).
 */
export const POOL_DEFAULTS: Pool.Options = { pipelining: 1, headersTimeout: 0, bodyTimeout: 0 };

const BYTES_READ_AT_ERROR = Symbol('trellis.bytesReadAtError');

/**
 * Notes on each error of `socket` how many bytes it had received before (h1-forward.ts tells a
 * keep-alive connection that had already carried a response from a fresh one by it). Call before
 * handing the socket to the pool, so this listener runs before undici's.
 */
export function noteBytesReadOnError(socket: Socket): void {
  socket.on('error', (err) => { (err as unknown as Record<symbol, number>)[BYTES_READ_AT_ERROR] = socket.bytesRead; });
}

/** Bytes the failed connection had received before the error, when known. */
export function bytesReadBefore(err: Error): number | undefined {
  const noted = (err as unknown as Record<symbol, number | undefined>)[BYTES_READ_AT_ERROR];
  return noted ?? (err as { socket?: { bytesRead?: number } }).socket?.bytesRead;
}

/** What `request` resolves with: the final status and, when asked for, the body. */
export interface SmallResponse { status: number; body: Buffer }

/**
 * One request on `pool` for the proxy's own small exchanges (span export, JWKS), where the global fetch
 * would load Node's bundled copy of undici (+40 MiB). Resolves with the final status and up to
 * `maxBodyBytes` of body (0: the body is read and dropped); rejects on a failure, on a body over the
 * limit, or when no complete answer came within `timeoutMs`.
 */
export function request(pool: Dispatcher, opts: Dispatcher.DispatchOptions, timeoutMs: number, maxBodyBytes = 0): Promise<SmallResponse> {
  return new Promise((resolve, reject) => {
    let status = 0;
    const chunks: Buffer[] = [];
    let bytes = 0;
    let abort: ((err: Error) => void) | undefined;
    let settled = false;
    const settle = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err); else resolve({ status, body: Buffer.concat(chunks, bytes) });
    };
    const fail = (err: Error): void => {
      abort?.(err);
      settle(err);
    };
    const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs}ms`)), timeoutMs);
    pool.dispatch(opts, {
      onConnect: (a) => { abort = a; },
      onHeaders: (s) => { if (s >= 200) status = s; return true; },
      onData: (chunk) => {
        if (maxBodyBytes === 0 || settled) return true;
        bytes += chunk.length;
        if (bytes > maxBodyBytes) fail(new Error(`the response body is over ${maxBodyBytes} bytes`));
        else chunks.push(chunk);
        return true;
      },
      onComplete: () => settle(undefined),
      onError: (err) => settle(err),
    });
  });
}

/** `request` for the status only; the body is read and dropped. */
export async function requestStatus(pool: Dispatcher, opts: Dispatcher.DispatchOptions, timeoutMs: number): Promise<number> {
  return (await request(pool, opts, timeoutMs)).status;
}
