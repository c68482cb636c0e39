/**
 * Trace propagation parsing/injection and the bounded OTLP exporter (queue bound, drops, flush, timeout).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { extractTrace, injectTrace, parseTraceparent } from '../../../src/proxy/tracing/propagation.js';
import { OtlpHttpExporter, type FinishedSpan } from '../../../src/proxy/tracing/otlp-exporter.js';
import { decodeJson } from '../../helpers/otlp-receiver.js';
import type { Logger } from '../../../src/shared/log.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';
const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } } as unknown as Logger;

function span(i: number): FinishedSpan {
  return { traceId: T, spanId: i.toString(16).padStart(16, '0'), name: 'GET', kind: 3, startMs: 1_700_000_000_000.5, endMs: 1_700_000_000_001.25, attributes: { n: i, s: 'x', b: true }, error: false };
}

describe('trace propagation', () => {
  it('parses W3C traceparent, refusing invalid ones', () => {
    assert.deepEqual(parseTraceparent(`00-${T}-${S}-01`), { traceId: T, spanId: S, sampled: true });
    assert.equal(parseTraceparent(`00-${T}-${S}-00`)?.sampled, false);
    assert.equal(parseTraceparent(`00-${'0'.repeat(32)}-${S}-01`), undefined);
    assert.equal(parseTraceparent(`ff-${T}-${S}-01`), undefined);
    assert.equal(parseTraceparent(`00-${T}-${S}-01-extra`), undefined);
    assert.equal(parseTraceparent(`01-${T}-${S}-01-extra`)?.traceId, T);
    assert.equal(parseTraceparent(`00-${T.toUpperCase()}-${S}-01`), undefined);
  });

  it('reads B3 multi and single headers; a decision-only header has no ids', () => {
    assert.deepEqual(extractTrace({ 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '1' }), { traceId: T, parentSpanId: S, sampled: true, b3: 'multi' });
    assert.deepEqual(extractTrace({ 'x-b3-traceid': S, 'x-b3-spanid': S }), { traceId: '0'.repeat(16) + S, parentSpanId: S, b3: 'multi' });
    assert.equal(extractTrace({ 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-flags': '1' })?.sampled, true);
    assert.deepEqual(extractTrace({ b3: `${T}-${S}-0` }), { traceId: T, parentSpanId: S, sampled: false, b3: 'single' });
    assert.deepEqual(extractTrace({ b3: `${T}-${S}` }), { traceId: T, parentSpanId: S, b3: 'single' });
    assert.deepEqual(extractTrace({ b3: '0' }), { sampled: false, b3: 'single' });
    assert.equal(extractTrace({ b3: 'garbage' }), undefined);
    assert.equal(extractTrace({}), undefined);
  });

  it('prefers a valid traceparent over B3 and keeps tracestate', () => {
    const got = extractTrace({ traceparent: `00-${T}-${S}-00`, tracestate: 'a=1', b3: `${'1'.repeat(32)}-${'2'.repeat(16)}-1` });
    assert.deepEqual(got, { traceId: T, parentSpanId: S, sampled: false, traceState: 'a=1', b3: 'single' });
  });

  it('injects this hop as the parent, in the forms that arrived', () => {
    const multi: Record<string, string> = { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-flags': '1' };
    injectTrace(multi, T, '1111111111111111', true, extractTrace(multi));
    assert.deepEqual(multi, { traceparent: `00-${T}-1111111111111111-01`, 'x-b3-traceid': T, 'x-b3-spanid': '1111111111111111', 'x-b3-parentspanid': S, 'x-b3-sampled': '1' });
    const single: Record<string, string> = { b3: `${T}-${S}-1` };
    injectTrace(single, T, '2222222222222222', true, extractTrace(single));
    assert.equal(single.b3, `${T}-2222222222222222-1-${S}`);
    const w3c: Record<string, string> = { traceparent: `00-${T}-${S}-01`, tracestate: 'k=v' };
    injectTrace(w3c, T, '3333333333333333', true, extractTrace(w3c));
    assert.deepEqual(w3c, { traceparent: `00-${T}-3333333333333333-01`, tracestate: 'k=v' });
  });
});

describe('OTLP exporter', () => {
  async function receiver(handler: (body: Buffer, res: http.ServerResponse) => void) {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => handler(Buffer.concat(chunks), res));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
  }

  it('drops and counts spans beyond the queue bound, exports the rest as OTLP/JSON', async () => {
    const got: FinishedSpan[][] = [];
    const recv = await receiver((body, res) => { got.push(decodeJson(body) as never); res.end('{}'); });
    const dropped: Record<string, number> = {};
    const exporter = new OtlpHttpExporter(recv.url, { resource: { 'service.name': 'svc' }, log: silent, onDropped: (r, n) => { dropped[r] = (dropped[r] ?? 0) + n; } },
      { maxQueueSize: 10, maxBatchSize: 100, flushIntervalMs: 60_000, exportTimeoutMs: 1000 });
    for (let i = 1; i <= 15; i++) exporter.add(span(i));
    assert.equal(exporter.queued, 10);
    assert.deepEqual(dropped, { queue_full: 5 });
    await exporter.flush();
    assert.equal(got.length, 1);
    const first = (got[0] as unknown as Array<{ spanId: string; startTimeUnixNano: string; attributes: Record<string, unknown>; resource: Record<string, unknown> }>);
    assert.equal(first.length, 10);
    assert.equal(first[0]!.startTimeUnixNano, '1700000000000500000');
    assert.deepEqual(first[0]!.attributes, { n: 1, s: 'x', b: true });
    assert.equal(first[0]!.resource['service.name'], 'svc');
    await exporter.shutdown();
    exporter.add(span(99));
    assert.equal((dropped as Record<string, number>).shutdown, 1);
    await recv.close();
  });

  it('bounds an export by its timeout and counts the batch as failed', async () => {
    const recv = await receiver(() => { /* never answers */ });
    let failed = 0;
    const exporter = new OtlpHttpExporter(recv.url, { resource: {}, log: silent, onDropped: (r, n) => { if (r === 'export_failed') failed += n; } },
      { maxQueueSize: 10, maxBatchSize: 10, flushIntervalMs: 10, exportTimeoutMs: 200 });
    exporter.add(span(1));
    exporter.add(span(2));
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 50));
    await exporter.flush();
    assert.equal(failed, 2);
    assert.ok(Date.now() - t0 < 2000);
    await recv.close();
  });

  it('posts to the endpoint\'s path over one kept-alive connection; a non-2xx answer fails the batch', async () => {
    const seen: string[] = [];
    let connections = 0;
    let answer = 200;
    const server = http.createServer((req, res) => { seen.push(`${req.method} ${req.url} ${req.headers['content-type']}`); req.resume(); req.on('end', () => { res.statusCode = answer; res.end('{}'); }); });
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    let failed = 0;
    const exporter = new OtlpHttpExporter(`http://127.0.0.1:${(server.address() as AddressInfo).port}/collector/`, { resource: {}, log: silent, onDropped: (r, n) => { if (r === 'export_failed') failed += n; } },
      { maxQueueSize: 10, maxBatchSize: 10, flushIntervalMs: 60_000, exportTimeoutMs: 1000 });
    exporter.add(span(1));
    await exporter.flush();
    await new Promise((r) => setImmediate(r)); // the pool checks an idle connection for one turn before reuse
    exporter.add(span(2));
    await exporter.flush();
    assert.deepEqual(seen, ['POST /collector/v1/traces application/json', 'POST /collector/v1/traces application/json']);
    assert.equal(connections, 1);
    assert.equal(failed, 0);
    answer = 503;
    exporter.add(span(3));
    await exporter.flush();
    assert.equal(failed, 1);
    await exporter.shutdown();
    await new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });
  });
});

describe('OTLP receiver protobuf decoding (test helper)', () => {
  const varint = (n: number): Buffer => { const out: number[] = []; do { let b = n & 0x7f; n = Math.floor(n / 128); if (n) b |= 0x80; out.push(b); } while (n); return Buffer.from(out); };
  const ld = (no: number, payload: Buffer): Buffer => Buffer.concat([varint((no << 3) | 2), varint(payload.length), payload]);
  const str = (no: number, s: string) => ld(no, Buffer.from(s));
  const vi = (no: number, n: number) => Buffer.concat([varint(no << 3), varint(n)]);
  const f64 = (no: number, n: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return Buffer.concat([varint((no << 3) | 1), b]); };
  const kv = (k: string, value: Buffer) => ld(1, Buffer.concat([str(1, k), ld(2, value)]));

  it('decodes an ExportTraceServiceRequest', async () => {
    const { decodeProtobuf } = await import('../../helpers/otlp-receiver.js');
    const spanMsg = Buffer.concat([
      ld(1, Buffer.from(T, 'hex')), ld(2, Buffer.from(S, 'hex')), ld(4, Buffer.from('1111111111111111', 'hex')),
      str(5, 'GET /x'), vi(6, 2), f64(7, 1n), f64(8, 2n),
      ld(9, Buffer.concat([str(1, 'http.request.method'), ld(2, str(1, 'GET'))])),
      ld(9, Buffer.concat([str(1, 'http.response.status_code'), ld(2, vi(3, 200))])),
      ld(15, vi(3, 2)),
    ]);
    const resource = ld(1, kv('service.name', str(1, 'svc')).subarray(0)); // Resource{attributes}
    const body = ld(1, Buffer.concat([resource, ld(2, ld(2, spanMsg))]));
    const [s] = decodeProtobuf(body);
    assert.deepEqual(s, {
      traceId: T, spanId: S, parentSpanId: '1111111111111111', traceState: '', name: 'GET /x', kind: 2,
      startTimeUnixNano: '1', endTimeUnixNano: '2', attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200 },
      statusCode: 2, resource: { 'service.name': 'svc' },
    });
  });
});
