/**
 * GET /api/v1/tap (adapters/api/tap-stream.ts) on a real ApiServer with the real TapService and a fake proxy
 * transport: 400/429 before the stream, status and tap events through the SDK, and a client that never reads
 * does not block the proxies' path — its events are dropped and counted.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ApiServer } from '../../../src/control-plane/adapters/api/server.js';
import { TapService, type TapControlMessage } from '../../../src/control-plane/core/taps.js';
import { DenialLog } from '../../../src/control-plane/core/denials.js';
import { createLogger } from '../../../src/shared/log.js';
import { TrellisApiError, TrellisClient, type TapEvent, type TapStreamMessage } from '../../../src/sdk/client.js';

const event = (i: number): TapEvent => ({
  at: new Date(0).toISOString(), instance: 'b1', direction: 'inbound', source: 'frontend', destination: 'backend', method: 'GET',
  path: `/items/${i}/${'p'.repeat(200)}`, status: 200, latencyMs: 1, requestHeaders: { 'user-agent': 'x'.repeat(200) },
});

describe('GET /api/v1/tap (Server-Sent Events)', () => {
  const sent: Array<{ to: string; msg: TapControlMessage }> = [];
  const taps = new TapService({ maxSessions: 3 });
  taps.attach({ instancesOf: (s) => (s === 'backend' ? ['b1'] : []), send: (to, msg) => { sent.push({ to, msg }); } });
  const denials = new DenialLog();
  let api: ApiServer;
  let client: TrellisClient;
  let address: string;

  before(async () => {
    api = new ApiServer({
      resources: {} as never, tokens: {} as never, queries: {} as never,
      metrics: { contentType: 'text/plain', text: async () => '' },
      status: () => ({}) as never, ready: () => true, adminToken: '', log: createLogger({ component: 'test' }),
      taps, denials,
    });
    address = await api.listen('127.0.0.1', 0);
    client = new TrellisClient({ baseUrl: `http://${address}` });
  });
  after(async () => { await api.close(); });

  it('answers 400 INVALID with field paths before the stream starts', async () => {
    const err = await client.tap({ service: 'backend', path: 'no-slash', method: 'G3T' }).next().catch((e: unknown) => e);
    assert.ok(err instanceof TrellisApiError);
    assert.equal(err.status, 400);
    assert.equal(err.code, 'INVALID');
    assert.deepEqual(err.errors.map((e) => e.path).sort(), ['method', 'path']);
    assert.equal(taps.size, 0);
  });

  it('streams status then tap events, and ends the session (tap-stop) when the client aborts', async () => {
    const abort = new AbortController();
    const stream = client.tap({ service: 'backend', method: 'GET' }, { signal: abort.signal });
    const first = (await stream.next()).value as TapStreamMessage;
    assert.deepEqual(first, { type: 'status', instances: 1, dropped: 0 });
    const start = sent.find((s) => s.msg.type === 'tap-start')!;
    assert.equal(start.to, 'b1');
    taps.receive('b1', 'backend', { type: 'tap', tapId: start.msg.tapId, events: [event(1), event(2)], dropped: 0 });
    const got: TapStreamMessage[] = [];
    for await (const m of stream) {
      got.push(m);
      if (got.filter((x) => x.type === 'tap').length === 2) break;
    }
    assert.deepEqual(got.filter((m) => m.type === 'tap').map((m) => (m as { event: TapEvent }).event.path.split('/')[2]), ['1', '2']);
    abort.abort();
    await waitFor(() => taps.size === 0);
    assert.deepEqual(sent.at(-1), { to: 'b1', msg: { type: 'tap-stop', tapId: start.msg.tapId } });
  });

  it('a client that never reads does not block: events are dropped and counted, other clients still work', async () => {
    const before = sent.length;
    const socket = net.connect(Number(address.split(':')[1]), '127.0.0.1');
    socket.pause(); // never read the body
    socket.write('GET /api/v1/tap?service=backend HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n');
    await waitFor(() => taps.size === 1);
    const tapId = sent.slice(before).find((s) => s.msg.type === 'tap-start')!.msg.tapId;
    const t0 = performance.now();
    const total = 50_000;
    for (let b = 0; b < total / 100; b++) {
      taps.receive('b1', 'backend', { type: 'tap', tapId, events: Array.from({ length: 100 }, (_, i) => event(b * 100 + i)), dropped: 0 });
    }
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < 5000, `feeding took ${elapsed}ms`);
    const session = (taps as unknown as { sessions: Map<string, { dropped: number }> }).sessions.get(tapId)!;
    assert.ok(session.dropped > 0, 'a reader that never reads loses events');
    assert.ok(session.dropped < total);

    // A normal client meanwhile is served.
    const abort = new AbortController();
    const other = client.tap({ service: 'backend' }, { signal: abort.signal });
    assert.equal(((await other.next()).value as TapStreamMessage).type, 'status');
    abort.abort();
    socket.destroy();
    await waitFor(() => taps.size === 0);
  });

  it('bounds concurrent taps: 429 TOO_MANY_TAPS', async () => {
    const aborts = [new AbortController(), new AbortController(), new AbortController()];
    const streams = aborts.map((a) => client.tap({ service: 'backend' }, { signal: a.signal }));
    for (const s of streams) await s.next();
    const err = await client.tap({ service: 'backend' }).next().catch((e: unknown) => e);
    assert.ok(err instanceof TrellisApiError);
    assert.equal(err.status, 429);
    assert.equal(err.code, 'TOO_MANY_TAPS');
    for (const a of aborts) a.abort();
    await waitFor(() => taps.size === 0);
  });

  it('GET /api/v1/denials lists the recent denials, newest first, by service', async () => {
    const d = { at: new Date(0).toISOString(), instance: 'x', source: 'frontend', destination: 'x', method: 'GET', reason: 'no' };
    denials.record('backend', 'b1', [{ ...d, path: '/a' }, { ...d, path: '/b', policy: 'deny-b', rule: 0 }]);
    denials.record('other', 'o1', [{ ...d, path: '/c' }]);
    assert.deepEqual((await client.denials()).map((x) => x.path), ['/c', '/b', '/a']);
    const backend = await client.denials({ service: 'backend' });
    assert.deepEqual(backend.map((x) => [x.path, x.destination, x.instance, x.policy ?? null]), [['/b', 'backend', 'b1', 'deny-b'], ['/a', 'backend', 'b1', null]]);
  });
});

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
