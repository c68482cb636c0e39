/**
 * A small standalone OTLP/HTTP trace receiver, run as its own process by integration tests (the
 * OpenTelemetry Collector is not available offline).
 *
 *   node dist/test/helpers/otlp-receiver.js [--port 0]
 *     prints {"event":"listening","name":"otlp","address":"127.0.0.1:PORT"}
 *   POST /v1/traces   application/json (OTLP/JSON) or application/x-protobuf (OTLP protobuf)
 *   GET  /spans       {"spans": [...], "requests": N} every span received, flattened
 *   DELETE /spans     forget what was received
 *
 * startOtlpReceiver() spawns it from a test and returns a small client.
 */
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

export type Attr = string | number | boolean | null;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Record<string, Attr>;
  statusCode: number;
  resource: Record<string, Attr>;
}

// ---------------- OTLP/JSON ----------------

interface JsonKeyValue { key: string; value?: Record<string, unknown> }

function jsonAnyValue(v: Record<string, unknown> | undefined): Attr {
  if (!v) return null;
  if ('stringValue' in v) return String(v.stringValue);
  if ('boolValue' in v) return Boolean(v.boolValue);
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return Number(v.doubleValue);
  return JSON.stringify(v);
}

function jsonAttrs(list: JsonKeyValue[] | undefined): Record<string, Attr> {
  const out: Record<string, Attr> = {};
  for (const kv of list ?? []) out[kv.key] = jsonAnyValue(kv.value);
  return out;
}

/** OTLP/JSON ids are hex; some encoders use base64 — accept both. */
function jsonId(v: unknown, bytes: number): string {
  if (typeof v !== 'string' || v === '') return '';
  if (v.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(v)) return v.toLowerCase();
  return Buffer.from(v, 'base64').toString('hex');
}

export function decodeJson(body: Buffer): ReceivedSpan[] {
  const req = JSON.parse(body.toString('utf8')) as { resourceSpans?: Array<{ resource?: { attributes?: JsonKeyValue[] }; scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }> }> };
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = jsonAttrs(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: jsonId(s.traceId, 16), spanId: jsonId(s.spanId, 8), parentSpanId: jsonId(s.parentSpanId, 8),
          traceState: String(s.traceState ?? ''), name: String(s.name ?? ''), kind: Number(s.kind ?? 0),
          startTimeUnixNano: String(s.startTimeUnixNano ?? '0'), endTimeUnixNano: String(s.endTimeUnixNano ?? '0'),
          attributes: jsonAttrs(s.attributes as JsonKeyValue[] | undefined),
          statusCode: Number((s.status as { code?: number } | undefined)?.code ?? 0),
          resource,
        });
      }
    }
  }
  return out;
}

// ---------------- OTLP protobuf (a minimal wire-format reader for the trace messages) ----------------

type Field = { no: number; wire: number; varint?: bigint; bytes?: Buffer; fixed?: Buffer };

function readVarint(buf: Buffer, pos: { i: number }): bigint {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos.i >= buf.length) throw new Error('truncated varint');
    const b = buf[pos.i++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return result;
    shift += 7n;
  }
}

export function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  const pos = { i: 0 };
  while (pos.i < buf.length) {
    const key = Number(readVarint(buf, pos));
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ no, wire, varint: readVarint(buf, pos) });
    else if (wire === 1) { out.push({ no, wire, fixed: buf.subarray(pos.i, pos.i + 8) }); pos.i += 8; }
    else if (wire === 5) { out.push({ no, wire, fixed: buf.subarray(pos.i, pos.i + 4) }); pos.i += 4; }
    else if (wire === 2) {
      const len = Number(readVarint(buf, pos));
      out.push({ no, wire, bytes: buf.subarray(pos.i, pos.i + len) });
      pos.i += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

function pbAnyValue(buf: Buffer): Attr {
  for (const f of fields(buf)) {
    if (f.no === 1 && f.bytes) return f.bytes.toString('utf8');
    if (f.no === 2 && f.varint !== undefined) return f.varint !== 0n;
    if (f.no === 3 && f.varint !== undefined) return Number(BigInt.asIntN(64, f.varint));
    if (f.no === 4 && f.fixed) return f.fixed.readDoubleLE(0);
  }
  return null;
}

function pbKeyValue(buf: Buffer, into: Record<string, Attr>): void {
  let key = '';
  let value: Attr = null;
  for (const f of fields(buf)) {
    if (f.no === 1 && f.bytes) key = f.bytes.toString('utf8');
    if (f.no === 2 && f.bytes) value = pbAnyValue(f.bytes);
  }
  into[key] = value;
}

function pbSpan(buf: Buffer, resource: Record<string, Attr>): ReceivedSpan {
  const s: ReceivedSpan = {
    traceId: '', spanId: '', parentSpanId: '', traceState: '', name: '', kind: 0,
    startTimeUnixNano: '0', endTimeUnixNano: '0', attributes: {}, statusCode: 0, resource,
  };
  for (const f of fields(buf)) {
    switch (f.no) {
      case 1: s.traceId = f.bytes!.toString('hex'); break;
      case 2: s.spanId = f.bytes!.toString('hex'); break;
      case 3: s.traceState = f.bytes!.toString('utf8'); break;
      case 4: s.parentSpanId = f.bytes!.toString('hex'); break;
      case 5: s.name = f.bytes!.toString('utf8'); break;
      case 6: s.kind = Number(f.varint ?? 0n); break;
      case 7: s.startTimeUnixNano = f.fixed!.readBigUInt64LE(0).toString(); break;
      case 8: s.endTimeUnixNano = f.fixed!.readBigUInt64LE(0).toString(); break;
      case 9: pbKeyValue(f.bytes!, s.attributes); break;
      case 15: for (const st of fields(f.bytes!)) if (st.no === 3) s.statusCode = Number(st.varint ?? 0n); break;
      default: break;
    }
  }
  return s;
}

export function decodeProtobuf(body: Buffer): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of fields(body)) {
    if (rs.no !== 1 || !rs.bytes) continue; // ExportTraceServiceRequest.resource_spans
    const resource: Record<string, Attr> = {};
    const parts = fields(rs.bytes);
    for (const f of parts) if (f.no === 1 && f.bytes) for (const a of fields(f.bytes)) if (a.no === 1 && a.bytes) pbKeyValue(a.bytes, resource);
    for (const f of parts) {
      if (f.no !== 2 || !f.bytes) continue; // ResourceSpans.scope_spans
      for (const sf of fields(f.bytes)) if (sf.no === 2 && sf.bytes) out.push(pbSpan(sf.bytes, resource)); // ScopeSpans.spans
    }
  }
  return out;
}

// ---------------- the process ----------------

function runReceiver(port: number): void {
  const spans: ReceivedSpan[] = [];
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.method === 'POST' && url.pathname === '/v1/traces') {
        const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const body = Buffer.concat(chunks);
        try {
          let got: ReceivedSpan[];
          if (type === 'application/json') got = decodeJson(body);
          else if (type === 'application/x-protobuf') got = decodeProtobuf(body);
          else { res.writeHead(415, { 'content-type': 'text/plain' }); res.end(`unsupported content-type ${type}`); return; }
          requests++;
          spans.push(...got);
          if (type === 'application/json') { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}'); }
          else { res.writeHead(200, { 'content-type': 'application/x-protobuf' }); res.end(); }
        } catch (err) {
          res.writeHead(400, { 'content-type': 'text/plain' });
          res.end(`bad OTLP request: ${(err as Error).message}`);
        }
        return;
      }
      if (url.pathname === '/spans' && req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ spans, requests }));
        return;
      }
      if (url.pathname === '/spans' && req.method === 'DELETE') {
        spans.length = 0;
        requests = 0;
        res.writeHead(204);
        res.end();
        return;
      }
      res.writeHead(404);
      res.end();
    });
  });
  server.listen(port, '127.0.0.1', () => {
    const a = server.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ event: 'listening', name: 'otlp', address: `127.0.0.1:${a.port}` })}\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

const SELF = fileURLToPath(import.meta.url);
if (process.argv[1] === SELF) {
  const i = process.argv.indexOf('--port');
  runReceiver(i === -1 ? 0 : Number(process.argv[i + 1]));
}

// ---------------- the test-side client ----------------

export interface OtlpReceiver {
  address: string;
  /** The OTLP endpoint to put in MeshConfig.tracing.otlpEndpoint. */
  endpoint: string;
  proc: ChildProcess;
  spans(): Promise<ReceivedSpan[]>;
  clear(): Promise<void>;
  stop(): Promise<void>;
}

/** Spawns the receiver as its own process on port 0 and waits for its address. */
export function startOtlpReceiver(): Promise<OtlpReceiver> {
  const proc = spawn(process.execPath, [SELF, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const killOnExit = () => { try { proc.kill('SIGKILL'); } catch { /* gone */ } };
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('OTLP receiver did not start')); }, 10_000);
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`OTLP receiver exited early (${code})`)); });
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl === -1) return;
      clearTimeout(timer);
      const { address } = JSON.parse(buf.slice(0, nl)) as { address: string };
      resolve({
        address,
        endpoint: `http://${address}`,
        proc,
        async spans() {
          const res = await fetch(`http://${address}/spans`);
          return ((await res.json()) as { spans: ReceivedSpan[] }).spans;
        },
        async clear() { await fetch(`http://${address}/spans`, { method: 'DELETE' }); },
        async stop() {
          if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGTERM'); await exited; }
          process.off('exit', killOnExit);
        },
      });
    });
  });
}
