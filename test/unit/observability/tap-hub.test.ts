/**
 * The proxy's live tap (src/proxy/tap/): filter matching, the per-second bound, the batch bound, backpressure on
 * the config stream, header redaction and truncation, expiry, and the no-tap fast path — with mocked timers.
 */
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { MAX_TAP_BATCH, MAX_TAP_HEADERS, MAX_TAP_HEADER_VALUE } from '../../../src/api/schema/tap.js';
import { ProxyMessage, type TapMessage, type TapStartMessage } from '../../../src/api/schema/xds.js';
import { FLUSH_INTERVAL_MS, MAX_STREAM_BACKLOG_BYTES, TapHub } from '../../../src/proxy/tap/tap-hub.js';
import { TAP_SESSION_TTL_MS } from '../../../src/proxy/tap/tap-session.js';
import { REDACTED, tapHeaders } from '../../../src/proxy/tap/tap-headers.js';
import type { MeshRequest } from '../../../src/proxy/pipeline/types.js';

function request(over: Partial<MeshRequest> = {}): MeshRequest {
  return {
    direction: 'inbound', method: 'GET', path: '/api/items?x=1', authority: 'backend', headers: { 'user-agent': 'test', authorization: 'Bearer secret' },
    body: new PassThrough(), protocol: 'http', grpc: false, source: { service: 'frontend' }, destination: 'backend',
    requestId: 'req-1', startedAt: 0, signal: new AbortController().signal, attrs: { route: 'r/0' }, ...over,
  };
}

const start = (over: Partial<TapStartMessage> = {}): TapStartMessage => ({ type: 'tap-start', tapId: 't1', maxEventsPerSecond: 1000, ...over });

describe('TapHub', () => {
  let sent: TapMessage[];
  let accept: boolean;
  let drops: Record<string, number>;
  let hub: TapHub;
  const observe = (req = request(), status = 200, error?: string) => hub.observer?.(req, status, error, req.source.service ?? 'x', 'backend', 3.5);

  beforeEach(() => {
    mock.timers.enable({ apis: ['setInterval', 'setImmediate', 'Date'], now: 1_700_000_000_000 });
    sent = [];
    accept = true;
    drops = {};
    hub = new TapHub({
      instance: 'backend-1',
      send: (msg, max) => { assert.equal(max, MAX_STREAM_BACKLOG_BYTES); if (accept) sent.push(msg); return accept; },
      onDropped: (reason, n) => { drops[reason] = (drops[reason] ?? 0) + n; },
      now: () => Date.now(),
    });
  });
  afterEach(() => { hub.close(); mock.timers.reset(); });

  it('has no observer while no tap is on, and one while a tap is on', () => {
    assert.equal(hub.observer, undefined);
    hub.start(start());
    assert.equal(typeof hub.observer, 'function');
    hub.stop('t1');
    assert.equal(hub.observer, undefined);
  });

  it('reports matching requests in batches every flush interval, as valid tap messages', () => {
    hub.start(start());
    observe(request(), 503, 'NO_HEALTHY_UPSTREAM');
    observe();
    assert.equal(sent.length, 0, 'batched, not sent per request');
    mock.timers.tick(FLUSH_INTERVAL_MS);
    assert.equal(sent.length, 1);
    const msg = ProxyMessage.parse(sent[0]) as TapMessage;
    assert.equal(msg.tapId, 't1');
    assert.equal(msg.dropped, 0);
    assert.equal(msg.events.length, 2);
    const e = msg.events[0]!;
    assert.equal(e.instance, 'backend-1');
    assert.equal(e.direction, 'inbound');
    assert.equal(e.source, 'frontend');
    assert.equal(e.destination, 'backend');
    assert.equal(e.method, 'GET');
    assert.equal(e.path, '/api/items?x=1');
    assert.equal(e.status, 503);
    assert.equal(e.error, 'NO_HEALTHY_UPSTREAM');
    assert.equal(e.route, 'r/0');
    assert.equal(e.latencyMs, 3.5);
    assert.equal(e.requestHeaders.authorization, REDACTED);
    assert.equal(e.requestHeaders['user-agent'], 'test');
    mock.timers.tick(FLUSH_INTERVAL_MS);
    assert.equal(sent.length, 1, 'nothing to send: no message');
  });

  it('matches the method case-insensitively and the path as a prefix of the path without query', () => {
    hub.start(start({ tapId: 'get-api', method: 'get', path: '/api' }));
    hub.start(start({ tapId: 'post', method: 'POST' }));
    observe(request({ method: 'GET', path: '/api/x' }));
    observe(request({ method: 'GET', path: '/other?/api' }));
    observe(request({ method: 'POST', path: '/api/y' }));
    observe(request({ method: 'get', path: '/apiary' }));
    mock.timers.tick(FLUSH_INTERVAL_MS);
    const byId = Object.fromEntries(sent.map((m) => [m.tapId, m.events.map((e) => `${e.method} ${e.path}`)]));
    assert.deepEqual(byId['get-api'], ['GET /api/x', 'get /apiary']);
    assert.deepEqual(byId.post, ['POST /api/y']);
  });

  it('bounds events per second (token bucket) and reports the drops in the next message', () => {
    hub.start(start({ maxEventsPerSecond: 5 }));
    for (let i = 0; i < 12; i++) observe();
    mock.timers.tick(FLUSH_INTERVAL_MS);
    assert.equal(sent[0]!.events.length, 5);
    assert.equal(sent[0]!.dropped, 7);
    assert.equal(drops.rate, 7);
    // 200ms later one more token (5/s) has been earned.
    for (let i = 0; i < 3; i++) observe();
    mock.timers.tick(FLUSH_INTERVAL_MS);
    assert.equal(sent[1]!.events.length, 1);
    assert.equal(sent[1]!.dropped, 2);
  });

  it('flushes a full batch at once and drops (counted) beyond MAX_TAP_BATCH until it is sent', () => {
    hub.start(start({ maxEventsPerSecond: 10_000 }));
    for (let i = 0; i < MAX_TAP_BATCH + 10; i++) observe();
    assert.equal(drops.buffer, 10);
    mock.timers.runAll(); // the setImmediate flush of the full batch
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.events.length, MAX_TAP_BATCH);
    assert.equal(sent[0]!.dropped, 10);
  });

  it('keeps every tap message under the control plane\'s 1 MiB line bound, even with maximal headers', () => {
    hub.start(start({ maxEventsPerSecond: 10_000 }));
    const headers: Record<string, string> = {};
    for (let i = 0; i < MAX_TAP_HEADERS; i++) headers[`x-${'n'.repeat(200)}-${i}`] = 'v'.repeat(MAX_TAP_HEADER_VALUE * 2);
    for (let i = 0; i < MAX_TAP_BATCH; i++) observe(request({ headers, path: `/${'p'.repeat(3000)}` }));
    mock.timers.runAll();
    assert.ok(sent[0]!.events.length > 0 && sent[0]!.events.length < MAX_TAP_BATCH, 'the batch is full by size before it is by count');
    assert.equal(sent.reduce((n, m) => n + m.events.length, 0) + (drops.buffer ?? 0), MAX_TAP_BATCH);
    for (const m of sent) assert.ok(Buffer.byteLength(JSON.stringify(m)) < 1024 * 1024, `${Buffer.byteLength(JSON.stringify(m))} bytes`);
    assert.doesNotThrow(() => ProxyMessage.parse(sent[0]));
  });

  it('drops a batch (counted) when the config stream is backed up, and reports it once it is not', () => {
    hub.start(start());
    accept = false;
    observe(); observe();
    mock.timers.tick(FLUSH_INTERVAL_MS);
    assert.equal(drops.backpressure, 2);
    accept = true;
    observe();
    mock.timers.tick(FLUSH_INTERVAL_MS);
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.events.length, 1);
    assert.equal(sent[0]!.dropped, 2);
  });

  it('ends a tap after TAP_SESSION_TTL_MS without tap-stop; a repeated tap-start refreshes it', () => {
    hub.start(start({ tapId: 'a' }));
    hub.start(start({ tapId: 'b' }));
    mock.timers.tick(TAP_SESSION_TTL_MS / 2);
    hub.start(start({ tapId: 'b' }));
    mock.timers.tick(TAP_SESSION_TTL_MS / 2 + FLUSH_INTERVAL_MS);
    assert.equal(hub.size, 1, 'a expired, b was refreshed');
    mock.timers.tick(TAP_SESSION_TTL_MS);
    assert.equal(hub.size, 0);
    assert.equal(hub.observer, undefined);
  });

  it('clear() (config stream reconnect) ends every tap', () => {
    hub.start(start({ tapId: 'a' }));
    hub.start(start({ tapId: 'b' }));
    hub.clear();
    assert.equal(hub.size, 0);
    assert.equal(hub.observer, undefined);
  });
});

describe('tapHeaders', () => {
  it('redacts credentials, truncates long values, joins repeated values and bounds the count', () => {
    const headers: Record<string, string | string[]> = {
      authorization: 'Bearer x', 'proxy-authorization': 'Basic y', cookie: 'a=b', 'set-cookie': ['c=d'],
      long: 'v'.repeat(MAX_TAP_HEADER_VALUE + 50), multi: ['1', '2'],
    };
    for (let i = 0; i < MAX_TAP_HEADERS + 10; i++) headers[`x-h${i}`] = String(i);
    const out = tapHeaders(headers);
    assert.equal(Object.keys(out).length, MAX_TAP_HEADERS);
    for (const h of ['authorization', 'proxy-authorization', 'cookie', 'set-cookie']) assert.equal(out[h], REDACTED, h);
    assert.equal(out.long!.length, MAX_TAP_HEADER_VALUE);
    assert.equal(out.multi, '1, 2');
  });
});
