/**
 * Golden metrics (control plane, src/control-plane/core/golden-metrics.ts) and the proxy's per-interval
 * aggregator (src/proxy/stats.ts), with fixed timestamps.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LATENCY_BUCKETS_MS } from '../../../src/api/latency-buckets.js';
import { ProxyMessage, type StatsRow } from '../../../src/api/schema/xds.js';
import { GoldenMetrics, histogramQuantile } from '../../../src/control-plane/core/golden-metrics.js';
import { StatsAggregator, latencyBucketIndex, statsIntervalFromEnv } from '../../../src/proxy/stats.js';

const T0 = 1_700_000_000_000; // a whole second
const WIDTH = LATENCY_BUCKETS_MS.length + 1;

/** A row whose requests all fall in the bucket of `ms`. */
function row(over: Partial<StatsRow> & { ms?: number } = {}): StatsRow {
  const { ms = 4, ...rest } = over;
  const requests = rest.requests ?? 10;
  const latency = new Array<number>(WIDTH).fill(0);
  latency[latencyBucketIndex(ms)] = requests;
  return { direction: 'inbound', source: 'frontend', destination: 'backend', route: 'default', requests, successes: requests, latency, ...rest };
}

describe('histogramQuantile', () => {
  it('interpolates linearly inside the bucket, like histogram_quantile', () => {
    const counts = new Array<number>(WIDTH).fill(0);
    counts[LATENCY_BUCKETS_MS.indexOf(10)] = 100; // all in (7.5, 10]
    assert.equal(histogramQuantile(0.5, counts), 8.75);
    assert.equal(histogramQuantile(1, counts), 10);
    assert.equal(histogramQuantile(0.99, counts), 7.5 + 2.5 * 0.99);
  });

  it('starts the first bucket at 0, spans buckets, caps the overflow bucket at the last bound, and is 0 when empty', () => {
    const counts = new Array<number>(WIDTH).fill(0);
    counts[0] = 50; // ≤ 1ms
    counts[LATENCY_BUCKETS_MS.indexOf(100)] = 40; // (75, 100]
    counts[WIDTH - 1] = 10; // > 30000
    assert.equal(histogramQuantile(0.25, counts), 0.5);
    assert.equal(histogramQuantile(0.7, counts), 75 + 25 * (20 / 40));
    assert.equal(histogramQuantile(0.99, counts), 30000);
    assert.equal(histogramQuantile(0.5, new Array<number>(WIDTH).fill(0)), 0);
  });
});

describe('GoldenMetrics', () => {
  it('sums the slots inside the window: rate, success rate, quantiles', () => {
    const g = new GoldenMetrics();
    g.ingest('backend', [row({ requests: 60, successes: 54, ms: 4 })], T0, 5000);
    g.ingest('backend', [row({ requests: 40, successes: 36, ms: 4 })], T0 + 5000, 5000);
    const res = g.query({ by: 'service', windowMs: 10_000, now: T0 + 5000 });
    assert.equal(res.rows.length, 1);
    const r = res.rows[0]!;
    assert.equal(r.service, 'backend');
    assert.equal(r.direction, 'inbound');
    assert.equal(r.requests, 100);
    assert.equal(r.successRate, 0.9);
    assert.equal(r.rps, 10); // 100 requests over the 10s covered
    assert.equal(r.latencyMs.p50, 4); // (3, 5]: 3 + 2 * 0.5
    // A 5s window ending at T0+5000 holds only the second report.
    const recent = g.query({ by: 'service', windowMs: 5000, now: T0 + 5000 }).rows[0]!;
    assert.equal(recent.requests, 40);
    assert.equal(recent.rps, 8);
    // The first report covers the 5 s before T0: a window inside them holds its share, one before them nothing.
    assert.equal(g.query({ by: 'service', windowMs: 1000, now: T0 - 1000 }).rows[0]!.requests, 12);
    assert.equal(g.query({ by: 'service', windowMs: 1000, now: T0 - 5000 }).rows.length, 0);
  });

  it('spreads a report over the time it covers, so a late report does not inflate a short window', () => {
    // The same 10 req/s seen by the caller (web, reports every 5 s) and the callee (catalog, whose
    // proxy stalled and sent one late report covering 14 s).
    const g = new GoldenMetrics();
    for (const at of [5_000, 10_000, 15_000, 20_000]) g.ingest('web', [row({ direction: 'outbound', source: 'web', destination: 'catalog', requests: 50 })], T0 + at, 5000);
    g.ingest('catalog', [row({ source: 'web', destination: 'catalog', requests: 50 })], T0 + 5_000, 5000);
    g.ingest('catalog', [row({ source: 'web', destination: 'catalog', requests: 137, successes: 131 })], T0 + 19_000, 14_000);
    const window = { windowMs: 10_000, now: T0 + 20_000 };
    const edge = g.query({ by: 'edge', ...window }).rows[0]!;
    const inbound = g.query({ by: 'service', ...window }).rows[0]!;
    assert.equal(edge.direction, 'outbound');
    assert.equal(edge.requests, 100);
    assert.equal(inbound.direction, 'inbound');
    // 9 of the late report's 14 seconds are in the window: each holds ⌊137/14⌋ = 9, plus one of the 11
    // left over (given to the report's latest seconds) = 90, not all 137 of them.
    assert.equal(inbound.requests, 90);
    // Whole requests, nothing lost or invented: the late report adds up to what it said, successes ≤ requests.
    const all = g.query({ by: 'service', windowMs: 60_000, now: T0 + 20_000 }).rows[0]!;
    assert.equal(all.requests, 187);
    assert.ok(all.successRate <= 1 && all.successRate > 0.96);
  });

  it('rates cover only the time stats have been arriving when that is shorter than the window', () => {
    const g = new GoldenMetrics();
    g.ingest('backend', [row({ requests: 20 })], T0, 2000);
    assert.equal(g.query({ by: 'service', windowMs: 60_000, now: T0 }).rows[0]!.rps, 10);
  });

  it('prefers the inbound view for services, outbound for routes, and keys edges by source → destination', () => {
    const g = new GoldenMetrics();
    g.ingest('backend', [row({ requests: 10, successes: 9 })], T0, 1000);
    g.ingest('frontend', [
      row({ direction: 'outbound', route: 'backend-route/0', requests: 12, successes: 8 }),
      row({ direction: 'outbound', destination: 'payments', route: 'default', requests: 5, successes: 5 }),
    ], T0, 1000);
    const services = g.query({ by: 'service', windowMs: 10_000, now: T0 }).rows;
    assert.deepEqual(services.map((r) => [r.service, r.direction, r.requests]), [['backend', 'inbound', 10], ['payments', 'outbound', 5]]);
    const routes = g.query({ by: 'route', windowMs: 10_000, now: T0, service: 'backend' }).rows;
    assert.deepEqual(routes.map((r) => [r.service, r.route, r.requests, r.successRate]), [['backend', 'backend-route/0', 12, 0.6667]]);
    const edges = g.query({ by: 'edge', windowMs: 10_000, now: T0 }).rows;
    assert.deepEqual(edges.map((r) => [r.source, r.service, r.direction]), [['frontend', 'backend', 'outbound'], ['frontend', 'payments', 'outbound']]);
    assert.deepEqual(g.query({ by: 'edge', windowMs: 10_000, now: T0, service: 'payments' }).rows.map((r) => r.service), ['payments']);
  });

  it('ignores rows a proxy may not report (another service\'s inbound, another caller\'s outbound)', () => {
    const g = new GoldenMetrics();
    assert.equal(g.ingest('frontend', [row(), row({ direction: 'outbound', source: 'mallory' })], T0), 0);
    assert.equal(g.query({ by: 'service', windowMs: 60_000, now: T0 }).rows.length, 0);
  });

  it('evicts slots older than the retention from the ring buffer, and forgets idle series', () => {
    const g = new GoldenMetrics({ retentionMs: 10_000, slotMs: 1000 });
    g.ingest('backend', [row({ requests: 7 })], T0);
    g.ingest('backend', [row({ requests: 3, source: 'other' })], T0);
    // Same ring position 10 slots later: the old slot is overwritten, not added to.
    g.ingest('backend', [row({ requests: 5 })], T0 + 10_000);
    const all = g.query({ by: 'edge', windowMs: 10_000, now: T0 + 10_000 }).rows;
    assert.deepEqual(all.map((r) => [r.source, r.requests]), [['frontend', 5]]);
    // A window reaching back further than the retention is clamped to it.
    assert.equal(g.query({ by: 'service', windowMs: 60_000, now: T0 + 10_000 }).rows[0]!.requests, 5);
    // The idle "other" series is dropped at the next prune.
    g.ingest('backend', [row({ requests: 1 })], T0 + 12_000);
    assert.equal(g.size, 1);
  });

  it('bounds the number of series and counts what it drops', () => {
    const g = new GoldenMetrics({ maxKeys: 2 });
    g.ingest('backend', [row({ route: 'a' }), row({ route: 'b' }), row({ route: 'c', requests: 4 })], T0, 1000, 6);
    assert.equal(g.size, 2);
    assert.equal(g.query({ by: 'service', windowMs: 10_000, now: T0 }).dropped, 10);
  });
});

describe('StatsAggregator (proxy)', () => {
  it('aggregates per key and interval, then resets', () => {
    let now = T0;
    const agg = new StatsAggregator(() => now);
    agg.record('inbound', 'frontend', 'backend', 'default', true, 0.4);
    agg.record('inbound', 'frontend', 'backend', 'default', false, 12);
    agg.record('outbound', 'backend', 'db', 'default', true, 40_000);
    now = T0 + 500;
    const msg = agg.flush()!;
    assert.deepEqual(msg.window, { start: T0, end: T0 + 500 });
    assert.equal(msg.rows.length, 2);
    const r = msg.rows.find((x) => x.direction === 'inbound')!;
    assert.equal(r.requests, 2);
    assert.equal(r.successes, 1);
    assert.equal(r.latency[0], 1);
    assert.equal(r.latency[LATENCY_BUCKETS_MS.indexOf(15)], 1);
    assert.equal(msg.rows.find((x) => x.direction === 'outbound')!.latency[WIDTH - 1], 1);
    assert.ok(ProxyMessage.safeParse(msg).success, 'the message matches the protocol schema');
    now = T0 + 1000;
    assert.equal(agg.flush(), undefined);
  });

  it('keeps at most maxRows keys per interval and counts the dropped requests', () => {
    const agg = new StatsAggregator(() => T0, 2);
    for (const route of ['a', 'b', 'c', 'c']) agg.record('outbound', 'x', 'y', route, true, 1);
    const msg = agg.flush()!;
    assert.equal(msg.rows.length, 2);
    assert.equal(msg.dropped, 2);
  });

  it('buckets latencies on the bounds (le) and reads the interval from the environment', () => {
    assert.equal(latencyBucketIndex(1), 0);
    assert.equal(latencyBucketIndex(1.0001), 1);
    assert.equal(latencyBucketIndex(30_000), LATENCY_BUCKETS_MS.length - 1);
    assert.equal(latencyBucketIndex(30_001), LATENCY_BUCKETS_MS.length);
    assert.equal(statsIntervalFromEnv({ TRELLIS_STATS_INTERVAL_MS: '500' }), 500);
    assert.equal(statsIntervalFromEnv({}), 5000);
    assert.equal(statsIntervalFromEnv({ TRELLIS_STATS_INTERVAL_MS: 'x' }), 5000);
  });
});
