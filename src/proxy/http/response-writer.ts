/**
 * Writes a MeshResponse to the downstream, HTTP/1.1 or HTTP/2, trailers included.
 */
import type { ServerResponse } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { constants as h2c } from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import type { HeaderMap, MeshResponse } from '../pipeline/types.js';

export interface WriteOptions {
  /** HTTP/1.1: ask the client to close the connection (draining, or after a protocol error). */
  close?: boolean;
  onDone?: (bytes: number, error?: Error) => void;
}

export function writeH1Response(res: ServerResponse, response: MeshResponse, opts: WriteOptions = {}): void {
  const headers: Record<string, string | string[]> = { ...(response.headers as Record<string, string | string[]>) };
  if (opts.close) headers['connection'] = 'close';
  const hasTrailers = response.trailers !== undefined;
  if (hasTrailers && headers['content-length'] === undefined) delete headers['content-length'];
  res.writeHead(response.status, headers);
  const done = opts.onDone ?? (() => {});
  if (!response.body) {
    res.end();
    done(0);
    return;
  }
  response.body.on('end', () => { // before pump's own 'end' listener ends the response
    const trailers = response.trailers?.();
    if (trailers && Object.keys(trailers).length > 0 && res.chunkedEncoding) res.addTrailers(trailers as Record<string, string>);
  });
  pump(response.body, res, done);
}

export function writeH2Response(stream: ServerHttp2Stream, response: MeshResponse, opts: WriteOptions = {}): void {
  const done = opts.onDone ?? (() => {});
  if (stream.destroyed || stream.closed) {
    response.body?.destroy();
    done(0, new Error('downstream stream closed'));
    return;
  }
  const headers: Record<string, string | string[] | number> = { ':status': response.status };
  for (const name in response.headers) headers[name] = response.headers[name]!;
  if (!response.body) {
    stream.respond(headers, { endStream: true });
    done(0);
    return;
  }
  const withTrailers = response.trailers !== undefined;
  stream.respond(headers, { waitForTrailers: withTrailers });
  if (withTrailers) {
    stream.once('wantTrailers', () => {
      const trailers = response.trailers?.() ?? {};
      try {
        stream.sendTrailers(cleanTrailers(trailers));
      } catch {
        stream.close(h2c.NGHTTP2_INTERNAL_ERROR);
      }
    });
  }
  pump(response.body, stream, done);
}

function cleanTrailers(trailers: HeaderMap): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in trailers) if (name.charCodeAt(0) !== 58) out[name] = trailers[name]!;
  return out;
}

/**
 * src → dest with backpressure, counting the bytes, calling `done` once: on dest's finish, or with the
 * error when either side fails or the downstream closes first (then the upstream body is destroyed,
 * cancelling it). One 'data' handler does what pipe() plus a counting listener did, with fewer
 * closures and listeners per response; nothing is removed afterwards because both streams belong to
 * this one exchange. (Not stream.pipeline(), which allocates and aborts an AbortController per call.)
 */
function pump(src: Readable, dest: Writable, done: (bytes: number, err?: Error) => void): void {
  let bytes = 0;
  let called = false;
  const finish = (err?: Error) => {
    if (called) return;
    called = true;
    done(bytes, err);
  };
  src.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (!dest.write(chunk)) src.pause();
  });
  dest.on('drain', () => { if (!called) src.resume(); });
  src.on('end', () => dest.end());
  src.on('error', (err: Error) => { dest.destroy(err); finish(err); });
  dest.on('error', (err: Error) => { src.destroy(err); finish(err); });
  dest.on('finish', () => finish());
  dest.on('close', () => {
    if (called) return;
    // HTTP/2 streams may close before 'finish': everything was handed over if the source had ended.
    if (src.readableEnded) { finish(); return; }
    src.destroy();
    finish(new Error('downstream closed before the response ended'));
  });
}
