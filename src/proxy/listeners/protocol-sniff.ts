/**
 * What a connection to the inbound port speaks, from its first bytes (MeshConfig `mtls: PERMISSIVE`
 * only; under STRICT nothing is sniffed). The Envoy tls_inspector / http_inspector idea, bounded:
 *   - a TLS record carrying a handshake starts 0x16 0x03 (content type handshake, major version 3:
 *     SSL 3.0 … TLS 1.3 all write 0x03 there) → the mTLS path, exactly as under STRICT;
 *   - the HTTP/2 connection preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (prior knowledge, how gRPC
 *     clients speak h2c) → plaintext HTTP/2;
 *   - an upper-case letter (a request line's method; llhttp then validates the rest and answers a
 *     clear 400 to anything malformed) → plaintext HTTP/1.1;
 *   - anything else: for a `tcp` service a plaintext byte stream, for an HTTP-family service garbage.
 * A decision never needs more than SNIFF_MAX_BYTES (the preface's 24; TLS needs 2, HTTP/1.1 one unless
 * it starts like the preface). The sniff ends after `timeoutMs` with `silent` when the client sent
 * nothing decisive. The bytes read are put back (unshift) for whoever takes the socket next:
 * tls.TLSSocket, the HTTP/1.1 parser and http2 sessions all start from a socket's buffered data.
 */
import type { Duplex } from 'node:stream';

/** The connection preface of HTTP/2 (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** The most bytes a decision needs. */
export const SNIFF_MAX_BYTES = H2_PREFACE.length;
/** A connection that says nothing decisive for this long is not sniffed any longer (the TLS handshake timeout). */
export const DEFAULT_SNIFF_TIMEOUT_MS = 10_000;

const TLS_HANDSHAKE = 0x16;
const TLS_MAJOR_VERSION = 0x03;
const A = 0x41;
const Z = 0x5a;

export type SniffedProtocol = 'tls' | 'h2c' | 'http1' | 'tcp';
/** `more`: not decided yet, read on. */
export type SniffVerdict = SniffedProtocol | 'garbage' | 'more';

/**
 * Pure: the verdict on the first bytes of a connection. `tcp`: the service is a tcp one (any non-TLS
 * bytes are its plaintext protocol). Never `more` once `bytes` holds SNIFF_MAX_BYTES or more.
 */
export function classifyFirstBytes(bytes: Uint8Array, tcp: boolean): SniffVerdict {
  if (bytes.length === 0) return 'more';
  const first = bytes[0]!;
  if (first === TLS_HANDSHAKE) {
    if (bytes.length < 2) return 'more';
    if (bytes[1] === TLS_MAJOR_VERSION) return 'tls';
    return tcp ? 'tcp' : 'garbage';
  }
  if (tcp) return 'tcp';
  const n = Math.min(bytes.length, SNIFF_MAX_BYTES);
  if (isPrefaceStart(bytes, n)) return n === SNIFF_MAX_BYTES ? 'h2c' : 'more';
  return first >= A && first <= Z ? 'http1' : 'garbage';
}

function isPrefaceStart(bytes: Uint8Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (bytes[i] !== H2_PREFACE[i]) return false;
  return true;
}

/** How a sniff ended: a protocol, or `silent` (timeout), `garbage`, `closed` (the client left first). */
export type SniffResult = SniffedProtocol | 'silent' | 'garbage' | 'closed';

export interface SniffOptions {
  /** The service is a tcp one (see classifyFirstBytes). */
  tcp: boolean;
  /** Give up waiting for decisive bytes after this long (result `silent`). */
  timeoutMs: number;
}

/**
 * Reads a fresh connection's first bytes and calls `done` once with the verdict. Whatever was read
 * is unshifted back before `done` runs (the socket is left paused, with no listener of ours), so the
 * next owner sees the connection from its first byte. On `closed`, `silent` and `garbage` the caller
 * decides what to do with the socket (close it, or tunnel a silent tcp client).
 */
export function sniffConnection(socket: Duplex, opts: SniffOptions, done: (result: SniffResult) => void): void {
  let seen: Buffer | undefined;
  let finished = false;
  const finish = (result: SniffResult): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('end', onGone);
    socket.off('close', onGone);
    socket.off('error', onGone);
    if (seen && result !== 'closed') socket.unshift(seen);
    done(result);
  };
  const onReadable = (): void => {
    let chunk: Buffer | null;
    // Read all that is buffered, so the next arrival raises 'readable' again.
    while ((chunk = socket.read() as Buffer | null) !== null) {
      seen = seen ? Buffer.concat([seen, chunk]) : chunk;
      const verdict = classifyFirstBytes(seen, opts.tcp);
      if (verdict !== 'more') { finish(verdict); return; }
    }
  };
  const onGone = (): void => finish('closed');
  const timer = setTimeout(() => finish('silent'), opts.timeoutMs);
  socket.on('readable', onReadable);
  socket.once('end', onGone);
  socket.once('close', onGone);
  socket.once('error', onGone);
}
