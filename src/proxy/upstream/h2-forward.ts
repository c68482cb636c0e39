/**
 * Sends a MeshRequest as one HTTP/2 stream on an existing session and resolves with the response
 * head; the body streams through. Used for proxy→proxy hops and for HTTP/2/gRPC apps.
 */
import type http2 from 'node:http2';
import { constants as h2c } from 'node:http2';
import { MeshError } from '../../api/errors.js';
import { endToEndHeaders } from '../http/headers.js';
import { deadlineHeaders } from '../filters/timeout.js';
import { whenAborted } from '../pipeline/abort.js';
import type { HeaderMap, MeshRequest, MeshResponse } from '../pipeline/types.js';

export interface ForwardObserver {
  /** Called once when the exchange is over (response body ended, or failed). */
  done(status: number | undefined, error: Error | undefined): void;
}

export function h2Forward(
  session: http2.ClientHttp2Session, req: MeshRequest, scheme: 'http' | 'https', observer?: ForwardObserver,
  extraHeaders?: Record<string, string>,
): Promise<MeshResponse> {
  const headers: http2.OutgoingHttpHeaders = {
    ':method': req.method,
    ':path': req.path,
    ':authority': req.authority,
    ':scheme': scheme,
  };
  for (const name in req.headers) headers[name] = req.headers[name];
  if (extraHeaders) for (const name in extraHeaders) headers[name] = extraHeaders[name];
  // Deadline propagation (outbound hops with a deadline only): x-trellis-deadline, and grpc-timeout for gRPC.
  const deadline = deadlineHeaders(req);
  if (deadline) for (const name in deadline) headers[name] = deadline[name];
  return new Promise<MeshResponse>((resolve, reject) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: req.emptyBody === true });
    } catch (err) {
      // The session is closing (GOAWAY): this stream never left.
      const refused = new MeshError('UPSTREAM_RESET', (err as Error).message, { refused: true });
      reject(refused);
      observer?.done(undefined, refused);
      return;
    }
    let status: number | undefined;
    let trailers: HeaderMap | undefined;
    let settled = false;
    // Also at once when already aborted, e.g. a deadline (filters/timeout.ts) that passed before the stream opened.
    const unsubscribe = whenAborted(req, () => stream.close(h2c.NGHTTP2_CANCEL));
    stream.on('response', (h, flags) => {
      status = Number(h[':status']);
      settled = true;
      if (flags & h2c.NGHTTP2_FLAG_END_STREAM) {
        // Trailers-only (e.g. a gRPC error status): pass it on as one HEADERS frame.
        stream.resume();
        resolve({ status, headers: endToEndHeaders(h), body: null });
        return;
      }
      resolve({ status, headers: endToEndHeaders(h), body: stream, trailers: () => trailers });
    });
    stream.on('trailers', (t) => { trailers = endToEndHeaders(t); });
    stream.on('error', (err) => {
      if (!settled) {
        settled = true;
        reject(new MeshError('UPSTREAM_RESET', `upstream stream error: ${err.message}`));
      }
    });
    stream.on('close', () => {
      unsubscribe();
      const code = stream.rstCode;
      if (!settled) {
        settled = true;
        // REFUSED_STREAM (RFC 9113 §8.7): the peer did no processing, e.g. it is draining.
        const failure = new MeshError('UPSTREAM_RESET', `upstream closed the stream before answering (code ${code})`, { refused: code === h2c.NGHTTP2_REFUSED_STREAM });
        reject(failure);
        observer?.done(status, failure);
        return;
      }
      observer?.done(status, code && code !== h2c.NGHTTP2_NO_ERROR ? new Error(`reset ${code}`) : undefined);
    });
    if (req.emptyBody) {
      req.body.resume(); // nothing to send (END_STREAM went with HEADERS); drained so it ends
      return;
    }
    req.body.on('error', () => stream.close(h2c.NGHTTP2_CANCEL));
    req.body.pipe(stream);
  });
}
