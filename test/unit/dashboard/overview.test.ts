/**
 * The dashboard's view model (core/overview.ts): golden metrics by service / edge / route from real GoldenMetrics,
 * routes and authorization policies from a real store, MeshConfig's default, bounded denials, the history series,
 * and the short cache shared by concurrent callers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LATENCY_BUCKETS_MS } from '../../../src/api/latency-buckets.js';
import type { StatsRow } from '../../../src/api/schema/xds.js';
import { DenialLog } from '../../../src/control-plane/core/denials.js';
import { GoldenMetrics } from '../../../src/control-plane/core/golden-metrics.js';
import { HISTORY_STEP_MS, OVERVIEW_DENIALS, OverviewService, serviceHistory } from '../../../src/control-plane/core/overview.js';
import { ResourceService } from '../../../src/control-plane/core/resource-service.js';
import type { ProxiesResponse, ServiceSummary } from '../../../src/control-plane/contract.js';
import { API, authzPolicy, httpRoute, noRegisteredServices, openStore, service } from '../control-plane/fixtures.js';

const T0 = 1_800_000_000_000;

function row(direction: 'inbound' | 'outbound', source: string, destination: string, requests: number, successes = requests, route = 'default'): StatsRow {
  const latency = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  latency[3] = requests;
  return { direction, source, destination, route, requests, successes, latency };
}

const summaries: ServiceSummary[] = ['catalog', 'web'].map((name) => ({ name, protocol: 'http', source: 'both', instances: 1, connected: 1 }));
const proxies: ProxiesResponse = {
  version: '7',
  proxies: [{ instanceId: 'web-1', service: 'web', address: '127.0.0.1:1', protocol: 'http', labels: {}, connected: true, ackedVersion: '7', certNotAfter: new Date(T0 + 86_400_000).toISOString() }],
};

async function setup() {
  const store = await openStore();
  const resources = new ResourceService(store, noRegisteredServices);
  await resources.apply([
    service('catalog'), service('web'),
    httpRoute('z-route', 'catalog', [{ name: 'catalog', weight: 1 }]),
    httpRoute('a-canary', 'catalog', [{ name: 'catalog', subset: { version: 'v1' }, weight: 90 }, { name: 'catalog', subset: { version: 'v2' }, weight: 10 }]),
    authzPolicy('allow-web', 'catalog'),
    { apiVersion: API, kind: 'MeshConfig', metadata: { name: 'default' }, spec: { authorization: { default: 'deny' } } },
  ]);
  const stats = new GoldenMetrics();
  const denials = new DenialLog();
  const queries = { services: async () => summaries, proxyStates: () => proxies };
  return { store, stats, denials, overview: new OverviewService({ store, queries, stats, denials }) };
}

describe('OverviewService', () => {
  it('shapes services, edges, routes, policies, the authorization default, denials and proxies into one overview', async () => {
    const { stats, denials, overview } = await setup();
    // web calls catalog (outbound from web, inbound at catalog), clients enter web through its own sidecar.
    stats.ingest('web', [row('outbound', 'web', 'catalog', 100, 99, 'a-canary/0'), row('outbound', 'web', 'web', 50), row('inbound', 'web', 'web', 50)], T0, 5000);
    stats.ingest('catalog', [row('inbound', 'web', 'catalog', 100, 98)], T0, 5000);
    denials.record('catalog', 'catalog-1', Array.from({ length: OVERVIEW_DENIALS + 10 }, (_, i) => ({
      at: new Date(T0 + i).toISOString(), instance: 'x', source: 'mallory', destination: 'x', method: 'GET', path: `/${i}`, reason: 'denied',
    })));

    const o = await overview.build({ window: '30s', windowMs: 30_000, now: T0 + 1000 });
    assert.equal(o.version, '7');
    assert.equal(o.window, '30s');
    assert.equal(o.at, new Date(T0 + 1000).toISOString());
    assert.deepEqual(o.services, summaries);
    assert.deepEqual(o.stats.services.map((r) => [r.service, r.direction, r.requests, r.successes]), [['catalog', 'inbound', 100, 98], ['web', 'inbound', 50, 50]]);
    assert.deepEqual(o.stats.edges.map((r) => [r.source, r.service, r.requests]), [['web', 'catalog', 100], ['web', 'web', 50]]);
    assert.deepEqual(o.stats.routes.map((r) => [r.service, r.route]), [['catalog', 'a-canary/0'], ['web', 'default']]);
    assert.ok(o.stats.services[0]!.rps > 0 && o.stats.services[0]!.latencyMs.p99 > 0);
    assert.deepEqual(o.routes.map((r) => r.metadata.name), ['a-canary', 'z-route'], 'routes sorted by name');
    const canary = o.routes[0] as { spec: { rules: { backendRefs: { weight: number }[] }[] } };
    assert.deepEqual(canary.spec.rules[0]!.backendRefs.map((b) => b.weight), [90, 10]);
    assert.equal(o.authorization.default, 'deny');
    assert.deepEqual(o.authorization.policies.map((p) => p.metadata.name), ['allow-web']);
    assert.equal(o.authorization.denials.length, OVERVIEW_DENIALS, 'denials are bounded');
    assert.equal(o.authorization.denialsKept, OVERVIEW_DENIALS + 10);
    assert.equal(o.authorization.denials[0]!.path, `/${OVERVIEW_DENIALS + 9}`, 'newest first');
    assert.deepEqual(o.proxies, proxies.proxies);
    assert.equal(o.history, undefined, 'no history unless asked');
  });

  it('without traffic: empty stats, allow default without MeshConfig', async () => {
    const store = await openStore();
    const overview = new OverviewService({ store, queries: { services: async () => [], proxyStates: () => ({ version: '0', proxies: [] }) } });
    const o = await overview.build({ window: '30s', windowMs: 30_000, now: T0 });
    assert.deepEqual(o.stats, { services: [], edges: [], routes: [], dropped: 0 });
    assert.equal(o.authorization.default, 'allow');
    assert.deepEqual(o.routes, []);
  });

  it('history: per-service points every step, oldest first, starting at the first data, each over the window', () => {
    const stats = new GoldenMetrics();
    // catalog gets 10 requests per 5 s interval from T0 on; web joins 60 s later.
    for (let t = T0; t <= T0 + 120_000; t += 5000) {
      stats.ingest('catalog', [row('inbound', 'web', 'catalog', 10)], t, 5000);
      if (t >= T0 + 60_000) stats.ingest('web', [row('inbound', 'web', 'web', 20)], t, 5000);
    }
    const now = T0 + 120_000;
    const h = serviceHistory(stats, 30_000, now, 5 * 60_000);
    assert.equal(h.stepMs, HISTORY_STEP_MS);
    const times = h.points.map((p) => Date.parse(p.at));
    assert.ok(times.every((t, i) => i === 0 || t - times[i - 1]! === HISTORY_STEP_MS), 'evenly spaced, oldest first');
    assert.ok(times[0]! >= T0 && times[0]! < T0 + HISTORY_STEP_MS, 'steps before any data are left out');
    assert.equal(times.at(-1), now - HISTORY_STEP_MS);
    const webFirst = h.points.findIndex((p) => p.services.some((s) => s.service === 'web'));
    assert.ok(Date.parse(h.points[webFirst]!.at) >= T0 + 60_000, 'web appears once it has traffic');
    const late = h.points.at(-1)!.services.find((s) => s.service === 'catalog')!;
    assert.ok(Math.abs(late.rps - 2) < 0.5, `catalog ~2 req/s over 30 s, got ${late.rps}`);
    assert.equal(late.successRate, 1);
  });

  it('history is included when asked for, and concurrent builds of the same window share one result', async () => {
    const { stats, overview } = await setup();
    stats.ingest('catalog', [row('inbound', 'web', 'catalog', 10)], T0 - 20_000, 5000);
    const a = overview.build({ window: '30s', windowMs: 30_000, now: T0, historyMs: 60_000 });
    const b = overview.build({ window: '30s', windowMs: 30_000, now: T0 + 100, historyMs: 60_000 });
    assert.equal(a, b, 'same promise within the cache time');
    const o = await a;
    assert.ok(o.history && o.history.points.length > 0);
    const d = overview.build({ window: '30s', windowMs: 30_000, now: T0 + 5000, historyMs: 60_000 });
    assert.notEqual(d, a, 'built anew after the cache time');
    const c = overview.build({ window: '1m', windowMs: 60_000, now: T0 + 5100 });
    assert.notEqual(c, d, 'another window is built anew');
    assert.equal((await c).window, '1m');
  });
});
