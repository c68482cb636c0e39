/**
 * Limits Node's HTTP/1.1 parser does not enforce by itself, checked once per request at every
 * HTTP/1.1 listener before anything is forwarded. (The parser already refuses CL+TE, duplicate or
 * invalid Content-Length, obfuscated Transfer-Encoding, obs-fold, bare CR/LF, NUL, bad chunk sizes,
 * a missing Host and headers over 60 KiB.)
 */
import type { IncomingMessage } from 'node:http';
import { MeshError } from '../../api/errors.js';

export const MAX_HEADER_COUNT = 100;
export const MAX_URL_BYTES = 16 * 1024;

export function guardH1Request(req: IncomingMessage): MeshError | undefined {
  const raw = req.rawHeaders;
  if (raw.length / 2 > MAX_HEADER_COUNT) {
    return new MeshError('REQUEST_TOO_LARGE', `more than ${MAX_HEADER_COUNT} request headers`, { status: 431 });
  }
  if ((req.url ?? '').length > MAX_URL_BYTES) {
    return new MeshError('REQUEST_TOO_LARGE', `request target longer than ${MAX_URL_BYTES} bytes`, { status: 414 });
  }
  // Only `chunked` is accepted: Node's parser refuses other codings only after the request event
  // (so a request with `Transfer-Encoding: xchunked` would already be on its way to the backend).
  const te = req.headers['transfer-encoding'];
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
    return new MeshError('BAD_REQUEST', 'unsupported Transfer-Encoding (only chunked)');
  }
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host' && ++hosts > 1) return new MeshError('BAD_REQUEST', 'duplicate Host header');
  }
  return undefined;
}

/**
 * Runs `dispatch` once the parser is done with the bytes that carried the request head. A request with
 * a body is dispatched on the next turn of the event loop: when its body is malformed in the same read
 * (bad chunk size, invalid framing), the parser's error has by then answered 400 and closed the
 * socket (clientError), and nothing is forwarded. A body that turns bad later aborts the upstream request.
 */
export function afterHeadParsed(req: IncomingMessage, dispatch: () => void): void {
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (!hasBody) { dispatch(); return; }
  setImmediate(() => {
    if (req.socket.destroyed || req.socket.writableEnded) return;
    dispatch();
  });
}
