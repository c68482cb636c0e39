/**
 * The rollout controller's state machine (core/rollouts.ts) on a fake clock (timers run only when the test
 * advances time), fake canary metrics and fake instances, with the real embedded store for persistence.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Resource, type ResourceOf } from '../../../src/api/schema/resources.js';
import {
  MAX_CONSECUTIVE_HOLDS, ROLLOUT_STATUS_BLOB, RolloutActionError, RolloutController, evaluateAnalysis,
  type RolloutInstance,
} from '../../../src/control-plane/core/rollouts.js';
import type { SubsetQuery, SubsetResult } from '../../../src/control-plane/core/subset-metrics.js';
import type { EmbeddedStore } from '../../../src/control-plane/adapters/store/embedded.js';
import { API, FakeClock, T0, openStore, tempDir } from './fixtures.js';

function rollout(spec: Record<string, unknown> = {}, name = 'catalog-rollout') {
  return Resource.parse({
    apiVersion: API, kind: 'Rollout', metadata: { name },
    spec: {
      service: 'catalog', stable: { version: 'v1' }, canary: { version: 'v2' }, steps: [10, 50, 100], interval: '10s',
      analysis: { minSuccessRate: 99, maxP99Latency: '500ms', minRequests: 10 }, ...spec,
    },
  });
}

const HEALTHY: SubsetResult = { requests: 100, successes: 100, successRate: 1, p99Ms: 20, instances: 1 };

interface Harness {
  store: EmbeddedStore;
  clock: FakeClock;
  ctl: RolloutController;
  queries: SubsetQuery[];
  pushes: { n: number };
  instances: RolloutInstance[];
  metrics: { next: SubsetResult };
  /** Advances by `ms` and waits for what the timers started. */
  advance(ms: number): Promise<void>;
}

async function harness(opts: { store?: EmbeddedStore; clock?: FakeClock; instances?: RolloutInstance[] } = {}): Promise<Harness> {
  const store = opts.store ?? await openStore();
  const clock = opts.clock ?? new FakeClock();
  const queries: SubsetQuery[] = [];
  const pushes = { n: 0 };
  const metrics = { next: HEALTHY };
  const instances = opts.instances ?? [{ labels: { version: 'v1' }, ready: true }, { labels: { version: 'v2' }, ready: true }];
  const ctl = new RolloutController({
    store, clock,
    metrics: { query: (q) => { queries.push(q); return metrics.next; } },
    instances: (service) => (service === 'catalog' ? instances : []),
    onRoutingChange: () => { pushes.n++; },
  });
  const h: Harness = {
    store, clock, ctl, queries, pushes, instances, metrics,
    advance: async (ms) => { clock.advance(ms); await ctl.idle(); },
  };
  return h;
}

async function applyRollout(h: Harness, r = rollout()): Promise<void> {
  await h.store.writeResources([r]);
  h.ctl.schedule();
  await h.ctl.idle();
}

const status = (h: Harness) => h.ctl.statusOf('catalog')!;

describe('RolloutController', () => {
  it('advances one step per passing analysis of the canary over the interval, then succeeds at 100%', async () => {
    const h = await harness();
    await h.ctl.start();
    await applyRollout(h);
    assert.equal(status(h).phase, 'Progressing');
    assert.equal(status(h).step, 0);
    assert.equal(status(h).canaryWeight, 10);
    assert.deepEqual(h.ctl.routing(), [{ rollout: 'catalog-rollout', service: 'catalog', stable: { version: 'v1' }, canary: { version: 'v2' }, canaryWeight: 10 }]);
    const pushesAtStart = h.pushes.n;
    assert.ok(pushesAtStart >= 1, 'the first split is pushed');
    assert.equal(status(h).nextAnalysisAt, new Date(T0 + 10_000).toISOString());

    await h.advance(9_999);
    assert.equal(h.queries.length, 0, 'no analysis before the interval ends');
    await h.advance(1);
    assert.equal(h.queries.length, 1);
    assert.deepEqual(h.queries[0], { service: 'catalog', selector: { version: 'v2' }, windowMs: 10_000, now: T0 + 10_000 });
    assert.equal(status(h).step, 1);
    assert.equal(status(h).canaryWeight, 50);
    assert.equal(status(h).lastAnalysis?.result, 'passed');
    assert.equal(h.pushes.n, pushesAtStart + 1, 'a weight change pushes a new config version');

    await h.advance(10_000);
    assert.equal(status(h).canaryWeight, 100);
    assert.equal(status(h).phase, 'Progressing', 'the 100% step is analysed too');
    await h.advance(10_000);
    assert.equal(status(h).phase, 'Succeeded');
    assert.equal(status(h).canaryWeight, 100);
    assert.equal(status(h).nextAnalysisAt, undefined);
    assert.equal(h.ctl.routing()[0]?.canaryWeight, 100, 'Succeeded keeps the canary at 100%');
    assert.equal(h.clock.pending, 0, 'no more analyses');
    assert.deepEqual(status(h).history.map((e) => [e.phase, e.canaryWeight]),
      [['Pending', 0], ['Progressing', 10], ['Progressing', 50], ['Progressing', 100], ['Succeeded', 100]]);
    h.ctl.close();
  });

  it('stays Pending (no split) until a stable and a canary instance are ready', async () => {
    const h = await harness({ instances: [{ labels: { version: 'v1' }, ready: true }, { labels: { version: 'v2' }, ready: false }] });
    await h.ctl.start();
    await applyRollout(h);
    assert.equal(status(h).phase, 'Pending');
    assert.equal(status(h).trafficSplit, false);
    assert.match(status(h).message, /canary \(version=v2\)/);
    assert.deepEqual(h.ctl.routing(), []);
    await h.advance(60_000);
    assert.equal(h.queries.length, 0);
    h.instances[1]!.ready = true;
    h.ctl.instancesChanged();
    await h.ctl.idle();
    assert.equal(status(h).phase, 'Progressing');
    assert.equal(status(h).canaryWeight, 10);
    h.ctl.close();
  });

  it('warns when every route to the service names its subsets (nothing to split), and clears it when one does not', async () => {
    const h = await harness();
    await h.ctl.start();
    const explicit = Resource.parse({ apiVersion: API, kind: 'HTTPRoute', metadata: { name: 'catalog-canary' }, spec: {
      parentRefs: [{ name: 'catalog' }], rules: [{ backendRefs: [{ name: 'catalog', subset: { version: 'v1' }, weight: 90 }, { name: 'catalog', subset: { version: 'v2' }, weight: 10 }] }],
    } });
    await h.store.writeResources([explicit]);
    await applyRollout(h);
    assert.match(status(h).warning ?? '', /no traffic is shifted: no rule of HTTPRoute catalog-canary sends to catalog without naming a subset/);
    await h.store.writeResources([Resource.parse({ ...explicit, spec: { ...explicit.spec, rules: [{ backendRefs: [{ name: 'catalog' }] }] } })]);
    h.ctl.schedule();
    await h.ctl.idle();
    assert.equal(status(h).warning, undefined);
    h.ctl.close();
  });

  it('does not start for a tcp service', async () => {
    const h = await harness({ instances: [{ labels: { version: 'v1' }, ready: true, protocol: 'tcp' }, { labels: { version: 'v2' }, ready: true, protocol: 'tcp' }] });
    await h.ctl.start();
    await applyRollout(h);
    assert.equal(status(h).phase, 'Pending');
    assert.match(status(h).message, /catalog is a tcp service/);
    assert.deepEqual(h.ctl.routing(), []);
    h.ctl.close();
  });

  it('holds the step when fewer than minRequests reached the canary, and rolls back after MAX_CONSECUTIVE_HOLDS in a row', async () => {
    const h = await harness();
    await h.ctl.start();
    await applyRollout(h);
    h.metrics.next = { requests: 4, successes: 4, successRate: 1, p99Ms: 5, instances: 1 };
    await h.advance(10_000);
    assert.equal(status(h).phase, 'Progressing');
    assert.equal(status(h).step, 0);
    assert.equal(status(h).holds, 1);
    assert.equal(status(h).lastAnalysis?.result, 'held');
    assert.match(status(h).lastAnalysis!.reason, /4 requests .* fewer than minRequests 10/);
    assert.equal(status(h).nextAnalysisAt, new Date(T0 + 20_000).toISOString());
    // Enough traffic again: the hold count resets and the rollout advances.
    h.metrics.next = HEALTHY;
    await h.advance(10_000);
    assert.equal(status(h).step, 1);
    assert.equal(status(h).holds, 0);

    h.metrics.next = { requests: 0, successes: 0, instances: 0 };
    for (let i = 1; i < MAX_CONSECUTIVE_HOLDS; i++) {
      await h.advance(10_000);
      assert.equal(status(h).phase, 'Progressing');
      assert.equal(status(h).holds, i);
      assert.equal(status(h).canaryWeight, 50);
    }
    await h.advance(10_000);
    assert.equal(status(h).phase, 'RolledBack');
    assert.equal(status(h).canaryWeight, 0);
    assert.match(status(h).message, /5 analyses in a row without enough requests/);
    h.ctl.close();
  });

  it('rolls back by itself when the canary\'s success rate is below minSuccessRate', async () => {
    const h = await harness();
    await h.ctl.start();
    await applyRollout(h);
    await h.advance(10_000);
    assert.equal(status(h).canaryWeight, 50);
    const before = h.pushes.n;
    h.metrics.next = { requests: 200, successes: 160, successRate: 0.8, p99Ms: 20, instances: 1 };
    await h.advance(10_000);
    assert.equal(status(h).phase, 'RolledBack');
    assert.equal(status(h).canaryWeight, 0);
    assert.equal(status(h).trafficSplit, true, 'the split stays, at 0% for the canary');
    assert.deepEqual(h.ctl.routing().map((r) => r.canaryWeight), [0]);
    assert.equal(h.pushes.n, before + 1);
    assert.match(status(h).lastAnalysis!.reason, /success rate 80\.00% < minSuccessRate 99%/);
    assert.equal(h.clock.pending, 0);
    await h.advance(60_000);
    assert.equal(status(h).phase, 'RolledBack', 'terminal until the Rollout changes');
    h.ctl.close();
  });

  it('rolls back when the canary\'s p99 is above maxP99Latency', async () => {
    const h = await harness();
    await h.ctl.start();
    await applyRollout(h);
    h.metrics.next = { requests: 50, successes: 50, successRate: 1, p99Ms: 812, instances: 1 };
    await h.advance(10_000);
    assert.equal(status(h).phase, 'RolledBack');
    assert.match(status(h).lastAnalysis!.reason, /p99 812ms > maxP99Latency 500ms/);
    h.ctl.close();
  });

  it('rolls back when no canary instance is ready any more', async () => {
    const h = await harness();
    await h.ctl.start();
    await applyRollout(h);
    h.instances[1]!.ready = false;
    await h.advance(10_000);
    assert.equal(status(h).phase, 'RolledBack');
    assert.match(status(h).message, /no ready instance of catalog has the canary labels version=v2/);
    assert.equal(h.queries.length, 0);
    h.ctl.close();
  });

  it('promote skips to 100% (Succeeded); abort sends the canary 0% (Aborted); unknown services are 404', async () => {
    const h = await harness();
    await h.ctl.start();
    await applyRollout(h);
    const promoted = await h.ctl.promote('catalog');
    assert.equal(promoted.phase, 'Succeeded');
    assert.equal(promoted.canaryWeight, 100);
    assert.equal(h.clock.pending, 0, 'no analysis after a promotion');
    assert.equal((await h.ctl.promote('catalog')).phase, 'Succeeded', 'promote again: unchanged');

    const aborted = await h.ctl.abort('catalog');
    assert.equal(aborted.phase, 'Aborted');
    assert.equal(aborted.canaryWeight, 0);
    assert.deepEqual(h.ctl.routing().map((r) => r.canaryWeight), [0]);
    assert.equal((await h.ctl.abort('catalog')).phase, 'Aborted');
    assert.equal(status(h).history.at(-1)?.reason, 'aborted by the operator');

    await assert.rejects(h.ctl.promote('ghost'), (err: unknown) => err instanceof RolloutActionError && err.status === 404);
    await assert.rejects(h.ctl.abort('ghost'), (err: unknown) => err instanceof RolloutActionError && err.status === 404);
    h.ctl.close();
  });

  it('abort during Progressing stops the analyses; promote needs a ready canary', async () => {
    const h = await harness();
    await h.ctl.start();
    await applyRollout(h);
    await h.ctl.abort('catalog');
    assert.equal(h.clock.pending, 0);
    await h.advance(30_000);
    assert.equal(h.queries.length, 0);
    h.instances[1]!.ready = false;
    await assert.rejects(h.ctl.promote('catalog'), (err: unknown) => err instanceof RolloutActionError && err.status === 409 && /canary labels/.test(err.message));
    h.instances[1]!.ready = true;
    assert.equal((await h.ctl.promote('catalog')).phase, 'Succeeded', 'an operator may promote an aborted rollout');
    h.ctl.close();
  });

  it('persists its status: a restarted controller resumes at its step with a fresh interval', async () => {
    const dir = await tempDir();
    const clock = new FakeClock();
    const h1 = await harness({ store: await openStore(dir), clock });
    await h1.ctl.start();
    await applyRollout(h1);
    await h1.advance(10_000);
    assert.equal(status(h1).canaryWeight, 50);
    h1.ctl.close();
    await h1.store.close();
    const peek = await openStore(dir);
    const saved = JSON.parse((await peek.getBlob(ROLLOUT_STATUS_BLOB))!) as { rollouts: Record<string, { status: { step: number } }> };
    await peek.close();
    assert.equal(saved.rollouts['catalog-rollout']?.status.step, 1);

    clock.advance(4_000);
    const h2 = await harness({ store: await openStore(dir), clock });
    await h2.ctl.start();
    assert.equal(status(h2).phase, 'Progressing');
    assert.equal(status(h2).step, 1, 'resumed, not restarted from step 0');
    assert.equal(status(h2).canaryWeight, 50);
    assert.deepEqual(h2.ctl.routing().map((r) => r.canaryWeight), [50], 'the split is in force before the first config version');
    assert.equal(status(h2).nextAnalysisAt, new Date(clock.now() + 10_000).toISOString());
    assert.match(status(h2).history.at(-1)!.reason, /resumed at step 1 \(50%\) after a control-plane restart/);
    await h2.advance(9_999);
    assert.equal(h2.queries.length, 0);
    await h2.advance(1);
    assert.equal(status(h2).canaryWeight, 100);
    h2.ctl.close();
  });

  it('a change of canary labels starts over; a change of steps applies to the running rollout; delete removes the split', async () => {
    const h = await harness({ instances: [{ labels: { version: 'v1' }, ready: true }, { labels: { version: 'v2' }, ready: true }, { labels: { version: 'v3' }, ready: true }] });
    await h.ctl.start();
    await applyRollout(h);
    await h.advance(10_000);
    assert.equal(status(h).step, 1);
    await applyRollout(h, rollout({ steps: [20, 40, 60, 100] }));
    assert.equal(status(h).step, 1, 'same identity: the step is kept');
    assert.equal(status(h).canaryWeight, 40, 'with the new steps\' weight');
    await applyRollout(h, rollout({ canary: { version: 'v3' } }));
    assert.equal(status(h).phase, 'Progressing');
    assert.equal(status(h).step, 0);
    assert.deepEqual(status(h).canary, { version: 'v3' });
    assert.equal(status(h).history[0]?.reason, 'created');

    const before = h.pushes.n;
    await h.store.deleteResource('Rollout', 'catalog-rollout');
    h.ctl.schedule();
    await h.ctl.idle();
    assert.equal(h.ctl.statusOf('catalog'), undefined);
    assert.deepEqual(h.ctl.routing(), []);
    assert.equal(h.pushes.n, before + 1);
    assert.equal(h.clock.pending, 0);
    h.ctl.close();
  });
});

describe('evaluateAnalysis', () => {
  const spec = (rollout() as ResourceOf<'Rollout'>).spec;
  it('passes at the thresholds, fails beyond them, holds below minRequests', () => {
    const at = new Date(T0).toISOString();
    assert.equal(evaluateAnalysis(spec, { requests: 100, successes: 99, successRate: 0.99, p99Ms: 500, instances: 1 }, 1000, at).result, 'passed');
    assert.equal(evaluateAnalysis(spec, { requests: 100, successes: 98, successRate: 0.98, p99Ms: 5, instances: 1 }, 1000, at).result, 'failed');
    assert.equal(evaluateAnalysis(spec, { requests: 100, successes: 100, successRate: 1, p99Ms: 501, instances: 1 }, 1000, at).result, 'failed');
    assert.equal(evaluateAnalysis(spec, { requests: 9, successes: 0, successRate: 0, p99Ms: 5000, instances: 1 }, 1000, at).result, 'held');
    const noThresholds = { ...spec, analysis: undefined };
    assert.equal(evaluateAnalysis(noThresholds, { requests: 20, successes: 0, successRate: 0, p99Ms: 9000, instances: 1 }, 1000, at).result, 'passed', 'unset thresholds are not checked');
    assert.equal(evaluateAnalysis(noThresholds, { requests: 19, successes: 19, successRate: 1, p99Ms: 1, instances: 1 }, 1000, at).result, 'held', 'minRequests defaults to 20');
  });
});
