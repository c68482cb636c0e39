/**
 * Sends a MeshRequest as one HTTP/1.1 exchange on a keep-alive pool and resolves with the response
 * head; the body streams through. Used for the local HTTP/1.1 app (app-forwarder.ts) and for
 * proxy→proxy hops to HTTP/1.1 services over the mTLS pool of peer-pool.ts.
 *
 * Failures that left nothing at the upstream are flagged `refused` (the router may then try another
 * endpoint): a connection that could not be made (the body is only sent once the connection is up,
 * so it is still unread), and a reused keep-alive connection the upstream had already closed
 * (ECONNRESET/EPIPE before any response byte: RFC 9112 §9.3.1's retry case).
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { MeshError } from '../../api/errors.js';
import { endToEndHeaders } from '../http/headers.js';
import { deadlineHeaders } from '../filters/timeout.js';
import { whenAborted } from '../pipeline/abort.js';
import type { HeaderMap, MeshRequest, MeshResponse } from '../pipeline/types.js';
import type { ForwardObserver } from './h2-forward.js';

/** Set on a pooled socket until it can carry a request (TLS: after the handshake); see peer-pool.ts. */
export const NOT_READY = Symbol('trellis.notReady');
type PoolSocket = Socket & { [NOT_READY]?: string };

export interface H1Target {
  host: string;
  port: number;
  agent: http.Agent;
  /** Names the upstream in error messages ("app 127.0.0.1:8080", "peer 10.0.0.2:15006"). */
  label: string;
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNABORTED']);
const STALE_CONNECTION_ERRORS = new Set(['ECONNRESET', 'EPIPE']);

export function h1Forward(target: H1Target, req: MeshRequest, observer?: ForwardObserver): Promise<MeshResponse> {
  const headers: HeaderMap = { ...req.headers, ...deadlineHeaders(req), host: req.authority };
  return new Promise((resolve, reject) => {
    let outgoing: http.ClientRequest;
    try {
      outgoing = http.request({ host: target.host, port: target.port, method: req.method, path: req.path, headers, agent: target.agent });
    } catch (err) {
      // The pool refused to open a connection (the proxy is shutting down): nothing was sent.
      observer?.done(undefined, err as Error);
      reject(err instanceof MeshError ? err : new MeshError('UPSTREAM_CONNECT_FAILED', `${target.label}: ${(err as Error).message}`, { refused: true }));
      return;
    }
    // The request's signal resets the upstream request (downstream gone, deadline passed). Wired by hand:
    // the `signal` option adds an end-of-stream watcher with ~8 listeners per request.
    const unsubscribe = whenAborted(req, () => outgoing.destroy(new Error('request aborted')));
    let connected = false;
    let status: number | undefined;
    let finished = false;
    const finish = (err: Error | undefined): void => {
      if (finished) return;
      finished = true;
      unsubscribe();
      observer?.done(status, err);
    };
    outgoing.on('response', (res) => {
      status = res.statusCode ?? 502;
      const hasTrailers = res.headers['trailer'] !== undefined;
      res.once('close', () => finish(res.complete ? undefined : new Error('response aborted')));
      resolve({
        status,
        headers: endToEndHeaders(res.headers),
        body: res,
        trailers: hasTrailers ? () => res.trailers as Record<string, string> : undefined,
      });
    });
    outgoing.on('error', (err: NodeJS.ErrnoException) => {
      if (status !== undefined) return; // the response body reports its own end (res 'close' above)
      finish(err);
      if (!connected || CONNECT_ERRORS.has(err.code ?? '')) {
        reject(new MeshError('UPSTREAM_CONNECT_FAILED', `${target.label}: ${err.message}`, { refused: true }));
      } else {
        const stale = outgoing.reusedSocket && STALE_CONNECTION_ERRORS.has(err.code ?? '');
        reject(new MeshError('UPSTREAM_RESET', `${target.label}: ${err.message}`, { refused: stale }));
      }
    });
    const send = (): void => {
      connected = true;
      if (req.emptyBody) {
        req.body.resume(); // drained so it ends; the request goes out without body framing
        outgoing.end();
        return;
      }
      req.body.on('error', () => outgoing.destroy());
      req.body.pipe(outgoing);
    };
    // The body is sent once the connection is up: a connection that fails leaves it unread.
    outgoing.once('socket', (socket: PoolSocket) => {
      const waitFor = socket[NOT_READY] ?? (socket.connecting ? 'connect' : undefined);
      if (waitFor === undefined) send();
      else socket.once(waitFor, send);
    });
  });
}
