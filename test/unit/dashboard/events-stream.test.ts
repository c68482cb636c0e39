/**
 * GET /api/v1/overview and GET /api/v1/events (adapters/api/events-stream.ts) on a real ApiServer through the SDK:
 * the first event carries history, later ones come on the interval; invalid windows answer 400 before the stream;
 * the stream bound answers 429; a client that never reads makes the server skip overviews (counted) instead of
 * buffering them, while another client keeps receiving; the OpenAPI document describes both endpoints.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { LATENCY_BUCKETS_MS } from '../../../src/api/latency-buckets.js';
import { ApiServer } from '../../../src/control-plane/adapters/api/server.js';
import { GoldenMetrics } from '../../../src/control-plane/core/golden-metrics.js';
import { OverviewService } from '../../../src/control-plane/core/overview.js';
import type { Resource } from '../../../src/api/schema/resources.js';
import { createLogger } from '../../../src/shared/log.js';
import { pollUntil } from '../../../src/shared/poll.js';
import { TrellisApiError, TrellisClient, type EventStreamMessage } from '../../../src/sdk/client.js';
import { Overview } from '../../../src/control-plane/contract.js';

describe('GET /api/v1/overview and /api/v1/events', () => {
  const stats = new GoldenMetrics();
  let routes: Resource[] = [];
  const overview = new OverviewService({
    cacheMs: 0,
    store: { listResources: async () => routes },
    queries: { services: async () => [{ name: 'catalog', protocol: 'http', source: 'registry', instances: 1, connected: 1 }], proxyStates: () => ({ version: '3', proxies: [] }) },
    stats,
  });
  let dropped = 0;
  let api: ApiServer;
  let client: TrellisClient;
  let address: string;

  before(async () => {
    const now = Date.now();
    const latency = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
    latency[2] = 10;
    for (let t = now - 60_000; t <= now; t += 5000) {
      stats.ingest('catalog', [{ direction: 'inbound', source: 'web', destination: 'catalog', route: 'default', requests: 10, successes: 10, latency }], t, 5000);
    }
    api = new ApiServer({
      resources: {} as never, tokens: {} as never, queries: {} as never,
      metrics: { contentType: 'text/plain', text: async () => '' },
      status: () => ({}) as never, ready: () => true, adminToken: '', log: createLogger({ component: 'test' }),
      overview, events: { intervalMs: 40, maxClients: 3, onDropped: () => { dropped++; } },
    });
    address = await api.listen('127.0.0.1', 0);
    client = new TrellisClient({ baseUrl: `http://${address}` });
  });
  after(async () => { await api.close(); });

  it('GET /api/v1/overview answers a valid Overview; history only when asked', async () => {
    const o = await client.overview({ window: '1m' });
    assert.ok(Overview.safeParse(o).success);
    assert.equal(o.window, '1m');
    assert.equal(o.stats.services[0]!.service, 'catalog');
    assert.equal(o.history, undefined);
    const h = await client.overview({ history: '1m' });
    assert.ok(h.history && h.history.points.length >= 4, 'points every 10 s over the last minute');
  });

  it('refuses bad windows and histories with field paths', async () => {
    for (const [q, paths] of [[{ window: '1s' }, ['window']], [{ window: 'soon' }, ['window']], [{ history: '1h' }, ['history']], [{ window: '20m', history: 'x' }, ['window', 'history']]] as const) {
      const err = await client.overview(q).catch((e: unknown) => e);
      assert.ok(err instanceof TrellisApiError && err.status === 400, JSON.stringify(q));
      assert.deepEqual(err.errors.map((e) => e.path), paths);
      const streamErr = await client.events(q).next().catch((e: unknown) => e);
      assert.ok(streamErr instanceof TrellisApiError && streamErr.status === 400, `events ${JSON.stringify(q)}`);
    }
  });

  it('streams an overview with history first, then fresh ones on the interval, each a valid EventStreamMessage', async () => {
    const abort = new AbortController();
    const got: EventStreamMessage[] = [];
    for await (const msg of client.events({ signal: abort.signal, window: '30s' })) {
      got.push(msg);
      if (got.length === 1) {
        // A change between events shows up in the next one.
        routes = [{ apiVersion: 'trellis.dev/v1alpha1', kind: 'HTTPRoute', metadata: { name: 'r' }, spec: { parentRefs: [{ name: 'catalog' }], rules: [{ backendRefs: [{ name: 'catalog', weight: 1 }] }] } } as Resource];
      }
      if (got.length === 3) break;
    }
    abort.abort();
    for (const m of got) assert.equal(m.type, 'overview');
    assert.ok(got.every((m) => Overview.safeParse(m.overview).success));
    assert.ok(got[0]!.overview.history && got[0]!.overview.history.points.length > 0, 'the first carries history');
    assert.equal(got[1]!.overview.history, undefined, 'later ones do not');
    assert.deepEqual(got.at(-1)!.overview.routes.map((r) => r.metadata.name), ['r']);
    routes = [];
  });

  it('a client that never reads: overviews are skipped and counted, not buffered; others keep streaming; the bound answers 429', async () => {
    // Big overviews fill the socket buffers quickly.
    routes = Array.from({ length: 300 }, (_, i) => ({
      apiVersion: 'trellis.dev/v1alpha1', kind: 'HTTPRoute', metadata: { name: `route-${i}`, annotations: { note: 'x'.repeat(500) } },
      spec: { parentRefs: [{ name: 'catalog' }], rules: [{ backendRefs: [{ name: 'catalog', weight: 1 }] }] },
    }) as Resource);
    const socket = net.connect(Number(address.split(':')[1]), '127.0.0.1');
    socket.pause();
    socket.write('GET /api/v1/events?history=0 HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n');
    const start = dropped;
    await pollUntil(() => dropped - start >= 20, { what: 'overviews to be skipped for the stalled client', timeoutMs: 20_000, intervalMs: 20 });

    // Two more streams fit (bound 3), a fourth is refused before streaming.
    const a = new AbortController();
    const b = new AbortController();
    const live = client.events({ signal: a.signal, history: '0' });
    assert.equal((await live.next()).value?.type, 'overview');
    const second = client.events({ signal: b.signal, history: '0' });
    await second.next();
    const refused = await client.events({ history: '0' }).next().catch((e: unknown) => e);
    assert.ok(refused instanceof TrellisApiError && refused.status === 429 && refused.code === 'TOO_MANY_STREAMS');
    assert.equal((await live.next()).value?.type, 'overview', 'a reading client still gets fresh overviews');
    a.abort(); b.abort();
    socket.destroy();
    routes = [];
    // Slots free up once the clients are gone.
    await pollUntil(async () => {
      const s = client.events({ history: '0' });
      try { await s.next(); return true; } catch { return false; } finally { await s.return(undefined); }
    }, { what: 'the stream slots to be released', timeoutMs: 10_000, intervalMs: 50 });
  });

  it('is described in the OpenAPI document', async () => {
    const doc = await client.openApi() as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>>; components: { schemas: Record<string, unknown> } };
    assert.ok(doc.paths['/api/v1/events']?.get?.responses['200']);
    assert.ok(doc.paths['/api/v1/events']?.get?.responses['429']);
    assert.ok(doc.paths['/api/v1/overview']?.get?.responses['200']);
    assert.ok(doc.components.schemas.Overview && doc.components.schemas.EventStreamMessage);
  });
});
