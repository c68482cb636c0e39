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
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host' && ++hosts > 1) return new MeshError('BAD_REQUEST', 'duplicate Host header');
  }
  return undefined;
}
