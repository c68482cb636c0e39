/** Golden metrics per label subset (core/subset-metrics.ts): what canary analysis reads. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SubsetMetrics } from '../../../src/control-plane/core/subset-metrics.js';
import { LATENCY_BUCKETS_MS } from '../../../src/api/latency-buckets.js';
import { latencyBucketIndex } from '../../../src/proxy/stats.js';
import type { StatsRow } from '../../../src/api/schema/xds.js';

function row(requests: number, successes: number, ms: number, opts: Partial<StatsRow> = {}): StatsRow {
  const latency = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  latency[latencyBucketIndex(ms)] = requests;
  return { direction: 'inbound', source: 'web', destination: 'catalog', route: 'inbound', requests, successes, latency, ...opts };
}

describe('SubsetMetrics', () => {
  it('tells the canary\'s requests from the stable\'s by the reporting instance\'s labels', () => {
    const m = new SubsetMetrics();
    m.track(['catalog']);
    m.ingest('c1', 'catalog', { version: 'v1' }, [row(90, 90, 4)], 10_000, 1000);
    m.ingest('c2', 'catalog', { version: 'v2', zone: 'a' }, [row(10, 5, 400)], 10_000, 1000);
    m.ingest('c3', 'catalog', { version: 'v2', zone: 'b' }, [row(10, 10, 400)], 10_000, 1000);
    const canary = m.query({ service: 'catalog', selector: { version: 'v2' }, windowMs: 5000, now: 10_000 });
    assert.equal(canary.requests, 20);
    assert.equal(canary.successes, 15);
    assert.equal(canary.successRate, 0.75);
    assert.equal(canary.instances, 2);
    assert.ok(canary.p99Ms! > 300 && canary.p99Ms! <= 500, String(canary.p99Ms));
    const stable = m.query({ service: 'catalog', selector: { version: 'v1' }, windowMs: 5000, now: 10_000 });
    assert.equal(stable.requests, 90);
    assert.equal(stable.successRate, 1);
    assert.ok(stable.p99Ms! <= 5);
    assert.deepEqual(m.query({ service: 'catalog', selector: { version: 'v3' }, windowMs: 5000, now: 10_000 }), { requests: 0, successes: 0, instances: 0 });
  });

  it('ignores outbound rows, rows about other services and untracked services', () => {
    const m = new SubsetMetrics();
    m.track(['catalog']);
    m.ingest('c1', 'catalog', { version: 'v2' }, [row(50, 50, 1, { direction: 'outbound', source: 'catalog', destination: 'inventory' }), row(7, 7, 1)], 1000, 1000);
    m.ingest('w1', 'web', { version: 'v2' }, [row(99, 99, 1, { destination: 'web' })], 1000, 1000);
    assert.equal(m.query({ service: 'catalog', selector: { version: 'v2' }, windowMs: 1000, now: 1000 }).requests, 7);
    assert.equal(m.query({ service: 'web', selector: { version: 'v2' }, windowMs: 1000, now: 1000 }).requests, 0);
    m.track([]);
    assert.equal(m.query({ service: 'catalog', selector: { version: 'v2' }, windowMs: 1000, now: 1000 }).requests, 0, 'untracking forgets');
  });

  it('counts only the part of a report inside the window, and forgets reports past the retention', () => {
    const m = new SubsetMetrics({ retentionMs: 60_000 });
    m.track(['catalog']);
    // 100 requests over [0, 10s], 100 over [10s, 20s].
    m.ingest('c2', 'catalog', { version: 'v2' }, [row(100, 100, 1)], 10_000, 10_000);
    m.ingest('c2', 'catalog', { version: 'v2' }, [row(100, 0, 1)], 20_000, 10_000);
    const last5s = m.query({ service: 'catalog', selector: { version: 'v2' }, windowMs: 5000, now: 20_000 });
    assert.equal(last5s.requests, 50);
    assert.equal(last5s.successRate, 0);
    const straddling = m.query({ service: 'catalog', selector: { version: 'v2' }, windowMs: 15_000, now: 20_000 });
    assert.equal(straddling.requests, 150);
    assert.equal(straddling.successes, 50);
    m.ingest('c2', 'catalog', { version: 'v2' }, [row(1, 1, 1)], 200_000, 1000);
    assert.equal(m.query({ service: 'catalog', selector: { version: 'v2' }, windowMs: 60_000, now: 60_000 }).requests, 0, 'older reports were dropped');
  });

  it('bounds the instances kept', () => {
    const m = new SubsetMetrics({ maxInstances: 2 });
    m.track(['catalog']);
    for (const id of ['a', 'b', 'c']) m.ingest(id, 'catalog', { version: 'v2' }, [row(1, 1, 1)], 1000, 1000);
    assert.equal(m.query({ service: 'catalog', selector: { version: 'v2' }, windowMs: 1000, now: 1000 }).instances, 2);
    assert.equal(m.dropped, 1);
  });
});
