/**
 * Access-log formatting (JSON and text), the per-config builder (absent policy → no logger), the
 * bounded writer (drops and counts instead of growing without bound), and prometheus-config output.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import {
  BoundedLineWriter, MAX_LOGGED_PATH, accessRecord, buildAccessLogger, formatJson, formatText, traceIdOf, type AccessRecord,
} from '../../../src/proxy/access-log.js';
import type { MeshRequest } from '../../../src/proxy/pipeline/types.js';
import { renderPrometheusConfig } from '../../../src/cli/commands/prometheus-config.js';
import YAML from 'yaml';

const TRACE = '0af7651916cd43dd8448eb211c80319c';

function record(over: Partial<AccessRecord> = {}): AccessRecord {
  return {
    time: '2026-01-02T03:04:05.678Z', direction: 'outbound', requestId: 'req-1', traceId: TRACE,
    source: 'frontend', destination: 'backend', method: 'GET', path: '/items?id=1', status: 503,
    error: 'UPSTREAM_CONNECT_FAILED', route: 'backend-route/0', latencyMs: 12.345, requestBytes: 10, responseBytes: 20,
    upstream: 'backend-host-1', upstreamAddress: '127.0.0.1:9000', attempts: 3, ...over,
  };
}

function meshRequest(over: Partial<MeshRequest> = {}): MeshRequest {
  return {
    direction: 'outbound', method: 'POST', path: '/a/b', authority: 'backend', headers: { traceparent: `00-${TRACE}-b7ad6b7169203331-01` },
    body: new PassThrough(), protocol: 'http', grpc: false, source: {}, destination: 'backend', requestId: 'rid',
    startedAt: 0, signal: new AbortController().signal, attrs: {}, ...over,
  } as MeshRequest;
}

describe('access log formatting', () => {
  it('JSON: one line, type "access", every field', () => {
    const line = formatJson(record());
    assert.ok(!line.includes('\n'));
    const o = JSON.parse(line);
    assert.deepEqual(o, {
      type: 'access', time: '2026-01-02T03:04:05.678Z', direction: 'outbound', request_id: 'req-1', trace_id: TRACE,
      source: 'frontend', destination: 'backend', method: 'GET', path: '/items?id=1', status: 503, error: 'UPSTREAM_CONNECT_FAILED',
      route: 'backend-route/0', latency_ms: 12.345, request_bytes: 10, response_bytes: 20, upstream: 'backend-host-1',
      upstream_address: '127.0.0.1:9000', attempts: 3,
    });
  });

  it('text: starts with "access", "-" for empty fields, the request line quoted', () => {
    const line = formatText(record({ error: '', upstream: '', upstreamAddress: '', status: 200 }));
    assert.equal(line,
      'access 2026-01-02T03:04:05.678Z outbound frontend->backend "GET /items?id=1" 200 - 12.345ms req_bytes=10 resp_bytes=20 '
      + `route=backend-route/0 upstream=- upstream_address=- attempts=3 request_id=req-1 trace_id=${TRACE}`);
  });

  it('a hostile path cannot break a line apart, and long paths are cut', () => {
    const evil = record({ path: '/x"\n{"type":"access","status":200}' });
    assert.equal(formatText(evil).split('\n').length, 1);
    assert.equal(formatJson(evil).split('\n').length, 1);
    assert.equal(JSON.parse(formatJson(evil)).path, evil.path);
    const long = JSON.parse(formatJson(record({ path: '/' + 'a'.repeat(5000) }))).path as string;
    assert.equal(long.length, MAX_LOGGED_PATH + 3);
  });

  it('traceIdOf takes the trace id of a W3C traceparent only', () => {
    assert.equal(traceIdOf(`00-${TRACE}-b7ad6b7169203331-01`), TRACE);
    assert.equal(traceIdOf('garbage'), '');
    assert.equal(traceIdOf(undefined), '');
    assert.equal(traceIdOf(['a']), '');
  });

  it('accessRecord reads request attributes: error code, upstream, attempts, trace id', () => {
    const r = accessRecord(meshRequest({ attrs: { route: 'r/1', upstreamInstance: 'i-1', upstreamAddress: '10.0.0.1:1', attempts: 2, errorCode: 'UPSTREAM_TIMEOUT' } }), {
      source: 'frontend', destination: 'backend', status: 504, latencyMs: 1.23456, requestBytes: 5, responseBytes: 6, now: new Date(0),
    });
    assert.equal(r.time, '1970-01-01T00:00:00.000Z');
    assert.equal(r.traceId, TRACE);
    assert.equal(r.error, 'UPSTREAM_TIMEOUT');
    assert.equal(r.upstream, 'i-1');
    assert.equal(r.upstreamAddress, '10.0.0.1:1');
    assert.equal(r.attempts, 2);
    assert.equal(r.route, 'r/1');
    assert.equal(r.latencyMs, 1.235);
    assert.equal(r.method, 'POST');
    // Defaults; the peer proxy's x-trellis-error header when this proxy generated nothing.
    const d = accessRecord(meshRequest({ headers: {} }), { source: 'a', destination: 'b', status: 503, latencyMs: 0, requestBytes: 0, responseBytes: 0, errorHeader: 'NO_HEALTHY_UPSTREAM' });
    assert.equal(d.attempts, 1);
    assert.equal(d.traceId, '');
    assert.equal(d.upstream, '');
    assert.equal(d.error, 'NO_HEALTHY_UPSTREAM');
  });
});

describe('access logger per config version', () => {
  it('no accessLog in MeshConfig → no logger, and no writer is even created', () => {
    let asked = 0;
    assert.equal(buildAccessLogger({}, () => { asked++; return { write: () => true }; }), undefined);
    assert.equal(buildAccessLogger(undefined, () => { asked++; return { write: () => true }; }), undefined);
    assert.equal(asked, 0);
  });

  it('writes one formatted line per record in the configured format', () => {
    const lines: string[] = [];
    const json = buildAccessLogger({ accessLog: { format: 'json' } }, () => ({ write: (l) => { lines.push(l); return true; } }))!;
    const text = buildAccessLogger({ accessLog: { format: 'text' } }, () => ({ write: (l) => { lines.push(l); return true; } }))!;
    json.log(record());
    text.log(record());
    assert.equal(JSON.parse(lines[0]!).type, 'access');
    assert.ok(lines[1]!.startsWith('access '));
  });
});

describe('BoundedLineWriter', () => {
  it('drops and counts lines when the stream does not drain, never buffering past the bound', () => {
    // A sink that never completes a write: everything after the first write stays buffered.
    const stuck = new Writable({ highWaterMark: 16, write: () => { /* never calls back */ } });
    let dropped = 0;
    const w = new BoundedLineWriter(stuck, () => { dropped++; }, 1000);
    let written = 0;
    for (let i = 0; i < 100; i++) if (w.write('x'.repeat(99))) written++;
    assert.equal(written, 10);
    assert.equal(dropped, 90);
    assert.ok(stuck.writableLength <= 1000);
  });

  it('writes whole lines to a draining stream', async () => {
    const chunks: string[] = [];
    const sink = new Writable({ write: (c, _e, cb) => { chunks.push(String(c)); cb(); } });
    let dropped = 0;
    const w = new BoundedLineWriter(sink, () => { dropped++; }, 1000);
    for (let i = 0; i < 50; i++) assert.ok(w.write(`line ${i} ${'y'.repeat(80)}`));
    await new Promise((r) => setImmediate(r));
    assert.equal(dropped, 0);
    assert.equal(chunks.join('').split('\n').filter(Boolean).length, 50);
  });

  it('drops after the stream is destroyed', () => {
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    sink.destroy();
    let dropped = 0;
    assert.equal(new BoundedLineWriter(sink, () => { dropped++; }).write('x'), false);
    assert.equal(dropped, 1);
  });
});

describe('trellis prometheus-config output', () => {
  const base = { protocol: 'http' as const, labels: {}, address: '127.0.0.1:1' };
  it('one static target per connected proxy with an admin address; valid YAML', () => {
    const text = renderPrometheusConfig([
      { ...base, instanceId: 'a-1', service: 'a', connected: true, adminAddress: '127.0.0.1:9001' },
      { ...base, instanceId: 'b-1', service: 'b', connected: true, adminAddress: '127.0.0.1:9002' },
      { ...base, instanceId: 'old-1', service: 'old', connected: true },
      { ...base, instanceId: 'gone-1', service: 'gone', connected: false, adminAddress: '127.0.0.1:9003' },
    ], { scrapeInterval: '1s', jobName: 'trellis-proxies', source: 'http://127.0.0.1:15000', now: new Date(0) });
    assert.match(text, /same host/);
    const doc = YAML.parse(text);
    assert.equal(doc.global.scrape_interval, '1s');
    const job = doc.scrape_configs[0];
    assert.equal(job.job_name, 'trellis-proxies');
    assert.equal(job.metrics_path, '/metrics');
    assert.equal(job.honor_labels, true);
    assert.deepEqual(job.static_configs, [
      { targets: ['127.0.0.1:9001'], labels: { service: 'a', instance: 'a-1' } },
      { targets: ['127.0.0.1:9002'], labels: { service: 'b', instance: 'b-1' } },
    ]);
    assert.match(text, /# skipped old-1: no admin address/);
    assert.match(text, /# skipped gone-1: not connected/);
  });

  it('no proxies → an empty, valid target list', () => {
    const doc = YAML.parse(renderPrometheusConfig([], { scrapeInterval: '15s', jobName: 'j', source: 's' }));
    assert.deepEqual(doc.scrape_configs[0].static_configs, []);
  });
});
