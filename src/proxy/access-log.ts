/**
 * Access logs (MeshConfig.accessLog): one line per finished HTTP-family request on stdout.
 *
 * - Built once per config version (runtime/compiled-config.ts): no `accessLog` in MeshConfig →
 *   no logger at all, so an absent policy costs nothing per request.
 * - `json`: {"type":"access",...} — the "type" field tells these lines from the proxy's
 *   {"event":...} announce lines on the same stdout. `text`: a line starting with "access ".
 * - Writes go through a bounded buffer: when stdout does not drain (the reader is slow or gone),
 *   lines are dropped and counted (trellis_access_log_dropped_total) instead of blocking requests.
 */
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { MeshConfigSpec } from '../api/schema/resources.js';
import type { MeshRequest } from './pipeline/types.js';

export type AccessLogFormat = 'json' | 'text';

/** Everything one access-log line says about a request. */
export interface AccessRecord {
  /** ISO-8601 time the request finished. */
  time: string;
  direction: string;
  requestId: string;
  /** The 32-hex trace id of the W3C traceparent, or "" when none. */
  traceId: string;
  source: string;
  destination: string;
  method: string;
  path: string;
  status: number;
  /** x-trellis-error code of a response the proxy generated itself, or "". */
  error: string;
  route: string;
  latencyMs: number;
  requestBytes: number;
  responseBytes: number;
  /** The upstream instance id (outbound) or "" (inbound: the local app). */
  upstream: string;
  upstreamAddress: string;
  /** Attempts made (1 + retries); 1 when no retry policy applied. */
  attempts: number;
}

/** Longest path written to a line; longer paths are cut (lines stay below the pipe's atomic write size). */
export const MAX_LOGGED_PATH = 1024;

const TRACEPARENT_RE = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

export function traceIdOf(traceparent: unknown): string {
  if (typeof traceparent !== 'string') return '';
  const m = TRACEPARENT_RE.exec(traceparent);
  return m ? m[1]! : '';
}

function clipPath(path: string): string {
  return path.length > MAX_LOGGED_PATH ? path.slice(0, MAX_LOGGED_PATH) + '...' : path;
}

export function formatJson(r: AccessRecord): string {
  return JSON.stringify({
    type: 'access',
    time: r.time,
    direction: r.direction,
    request_id: r.requestId,
    trace_id: r.traceId,
    source: r.source,
    destination: r.destination,
    method: r.method,
    path: clipPath(r.path),
    status: r.status,
    error: r.error,
    route: r.route,
    latency_ms: r.latencyMs,
    request_bytes: r.requestBytes,
    response_bytes: r.responseBytes,
    upstream: r.upstream,
    upstream_address: r.upstreamAddress,
    attempts: r.attempts,
  });
}

/** `access TIME DIRECTION SOURCE->DESTINATION "METHOD PATH" STATUS ERROR LATENCYms key=value...`; "-" for empty. */
export function formatText(r: AccessRecord): string {
  const d = (v: string) => (v === '' ? '-' : v);
  // JSON.stringify quotes and escapes the request line, so a path can never break the line apart.
  return `access ${r.time} ${r.direction} ${d(r.source)}->${d(r.destination)} ${JSON.stringify(`${r.method} ${clipPath(r.path)}`)} ${r.status} ${d(r.error)} ${r.latencyMs}ms`
    + ` req_bytes=${r.requestBytes} resp_bytes=${r.responseBytes} route=${d(r.route)} upstream=${d(r.upstream)} upstream_address=${d(r.upstreamAddress)}`
    + ` attempts=${r.attempts} request_id=${d(r.requestId)} trace_id=${d(r.traceId)}`;
}

/** Builds the record for a finished request (ingress.ts, at the end of `run`). */
export function accessRecord(req: MeshRequest, f: {
  source: string; destination: string; status: number; latencyMs: number; requestBytes: number; responseBytes: number;
  /** The response's x-trellis-error header (set by this proxy or by the peer proxy). */
  errorHeader?: unknown; now?: Date;
}): AccessRecord {
  const upstream = req.attrs.upstreamInstance;
  const upstreamAddress = req.attrs.upstreamAddress;
  return {
    time: (f.now ?? new Date()).toISOString(),
    direction: req.direction,
    requestId: req.requestId,
    traceId: traceIdOf(req.headers['traceparent']),
    source: f.source,
    destination: f.destination,
    method: req.method,
    path: req.path,
    status: f.status,
    error: req.attrs.errorCode ?? (typeof f.errorHeader === 'string' ? f.errorHeader : ''),
    route: req.attrs.route ?? '',
    latencyMs: Math.round(f.latencyMs * 1000) / 1000,
    requestBytes: f.requestBytes,
    responseBytes: f.responseBytes,
    upstream: typeof upstream === 'string' ? upstream : '',
    upstreamAddress: typeof upstreamAddress === 'string' ? upstreamAddress : '',
    attempts: typeof req.attrs.attempts === 'number' ? req.attrs.attempts : 1,
  };
}

/** Default bound of unwritten access-log bytes before lines are dropped. */
export const DEFAULT_MAX_BUFFERED_BYTES = 1 << 20;

/**
 * Writes whole lines to a stream and never lets its buffer grow past `maxBufferedBytes`: a line that
 * does not fit is dropped and `onDrop` is called.
 */
export class BoundedLineWriter {
  constructor(
    private readonly out: Writable,
    private readonly onDrop: () => void,
    private readonly maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES,
  ) {
    out.on('error', () => { /* stdout closed: later lines are dropped below */ });
  }

  /** Returns false when the line was dropped. */
  write(line: string): boolean {
    const out = this.out;
    if (out.destroyed || out.writableEnded || out.writableLength + line.length + 1 > this.maxBufferedBytes) {
      this.onDrop();
      return false;
    }
    out.write(line + '\n');
    return true;
  }
}

let stdoutWriter: { writer: BoundedLineWriter; onDrop: () => void } | undefined;

/**
 * One writer on fd 1 for the whole process. process.stdout is synchronous for pipes and files on
 * POSIX (a slow reader would block the event loop), so access logs use their own asynchronous
 * stream on the same fd: its buffer grows instead, and is bounded by BoundedLineWriter.
 */
export function stdoutLineWriter(onDrop: () => void): BoundedLineWriter {
  if (!stdoutWriter) {
    const stream = createWriteStream('', { fd: 1, autoClose: false, highWaterMark: 64 * 1024 });
    const holder = { writer: undefined as unknown as BoundedLineWriter, onDrop };
    holder.writer = new BoundedLineWriter(stream, () => holder.onDrop());
    stdoutWriter = holder;
  }
  stdoutWriter.onDrop = onDrop;
  return stdoutWriter.writer;
}

export interface AccessLogger {
  readonly format: AccessLogFormat;
  log(record: AccessRecord): void;
}

/** The access logger of one config version, or undefined when MeshConfig has no accessLog. */
export function buildAccessLogger(
  meshConfig: Pick<MeshConfigSpec, 'accessLog'> | undefined,
  writer: () => { write(line: string): boolean },
): AccessLogger | undefined {
  const policy = meshConfig?.accessLog;
  if (!policy) return undefined;
  const format: AccessLogFormat = policy.format ?? 'json';
  const fmt = format === 'text' ? formatText : formatJson;
  const out = writer();
  return { format, log: (record) => { out.write(fmt(record)); } };
}
