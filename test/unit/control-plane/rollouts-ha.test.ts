/**
 * Rollouts with several control planes sharing a store (core/rollouts.ts elected mode, rollout-commands.ts,
 * shared-subset-stats.ts, rollout-replication.ts), over an in-memory shared store whose sessions end like
 * expired etcd leases, on a fake clock: one leader decides and writes the status, followers serve it, the
 * leader's analysis sees the canary requests another control plane's proxies reported, a follower's
 * promote/abort runs on the leader, and a leader's death hands the rollout over.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Resource } from '../../../src/api/schema/resources.js';
import { LATENCY_BUCKETS_MS } from '../../../src/api/latency-buckets.js';
import type { StatsRow } from '../../../src/api/schema/xds.js';
import { latencyBucketIndex } from '../../../src/proxy/stats.js';
import { ROLLOUT_STATUS_BLOB, RolloutActionError, RolloutController, type RolloutInstance } from '../../../src/control-plane/core/rollouts.js';
import { RolloutCommands } from '../../../src/control-plane/core/rollout-commands.js';
import { MAX_SHARED_REPORTS, SharedSubsetStats } from '../../../src/control-plane/core/shared-subset-stats.js';
import { SubsetMetrics } from '../../../src/control-plane/core/subset-metrics.js';
import { onRolloutStoreChange } from '../../../src/control-plane/core/rollout-replication.js';
import { API, FakeClock } from './fixtures.js';
import { SharedMemory } from './shared-memory-store.js';

const READY: RolloutInstance[] = [{ labels: { version: 'v1' }, ready: true }, { labels: { version: 'v2' }, ready: true }];

function rollout(spec: Record<string, unknown> = {}) {
  return Resource.parse({
    apiVersion: API, kind: 'Rollout', metadata: { name: 'catalog-rollout' },
    spec: { service: 'catalog', stable: { version: 'v1' }, canary: { version: 'v2' }, steps: [50, 100], interval: '10s', analysis: { minSuccessRate: 99, minRequests: 10 }, ...spec },
  });
}

function row(requests: number, successes: number, ms = 5): StatsRow {
  const latency = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  latency[latencyBucketIndex(ms)] = requests;
  return { direction: 'inbound', source: 'web', destination: 'catalog', route: 'inbound', requests, successes, latency };
}

function replica(mem: SharedMemory, clock: FakeClock, opts: { timeoutMs?: number; instances?: RolloutInstance[] } = {}) {
  const store = mem.session();
  const metrics = new SubsetMetrics();
  const pushes = { n: 0 };
  let commands: RolloutCommands | undefined;
  const ctl = new RolloutController({
    store, clock, metrics, elected: true,
    instances: (s) => (s === 'catalog' ? opts.instances ?? READY : []),
    onRoutingChange: () => { pushes.n++; },
    forward: (action, service) => commands!.forward(action, service),
  });
  commands = new RolloutCommands({ store, controller: ctl, timeoutMs: opts.timeoutMs ?? 10_000 });
  const stats = new SharedSubsetStats({ store, metrics });
  store.watch((change) => onRolloutStoreChange(change, { rollouts: ctl, commands: commands!, stats }));
  return {
    store, ctl, metrics, stats, pushes, commands,
    /** Starts following, then campaigns (main.ts's order). */
    start: async () => { await ctl.start(); store.campaign('rollouts', (leader) => ctl.setLeader(leader)); },
    /** The process dies: its session ends (lease expiry). */
    die: () => { ctl.close(); commands!.close(); store.kill(); },
  };
}
type Replica = ReturnType<typeof replica>;

/** Lets every queued step of every replica run (store events start more steps, so a few rounds). */
async function settle(...rs: Replica[]): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await Promise.all(rs.flatMap((r) => [r.ctl.idle(), r.stats.idle()]));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Replicas A and B over one shared store, started and settled (B campaigns unless `bCampaigns` is false);
 * `applyRollout` writes the catalog Rollout through A and settles both.
 */
async function twoReplicas(opts: { a?: Parameters<typeof replica>[2]; b?: Parameters<typeof replica>[2]; bCampaigns?: boolean } = {}) {
  const mem = new SharedMemory();
  const clock = new FakeClock();
  const a = replica(mem, clock, opts.a);
  const b = replica(mem, clock, opts.b);
  await a.start();
  await (opts.bCampaigns === false ? b.ctl.start() : b.start());
  await settle(a, b);
  const applyRollout = async (): Promise<void> => {
    await a.store.writeResources([rollout()]);
    await settle(a, b);
  };
  return { mem, clock, a, b, applyRollout };
}

const statusOf = (r: Replica) => r.ctl.statusOf('catalog');

describe('rollouts with several control planes', () => {
  it('one leader decides; the follower serves the same status and splits; the leader analyses the follower\'s canary stats; the follower takes over when the leader dies', async () => {
    const { mem, clock, a, b, applyRollout } = await twoReplicas();
    assert.equal(a.ctl.isLeader, true, 'the first to campaign leads');
    assert.equal(b.ctl.isLeader, false);

    await applyRollout();
    assert.equal(statusOf(a)?.phase, 'Progressing');
    assert.equal(statusOf(a)?.canaryWeight, 50);
    assert.deepEqual(b.ctl.list(), a.ctl.list(), 'the follower serves the leader\'s status');
    assert.deepEqual(b.ctl.routing(), a.ctl.routing(), 'and compiles the same split');
    assert.equal(b.ctl.routing()[0]?.canaryWeight, 50);
    assert.ok(b.pushes.n >= 1, 'the follower pushed a config version for the split');
    assert.ok(mem.blobWrites.filter((w) => w.key === ROLLOUT_STATUS_BLOB).every((w) => w.session === a.store.sessionId), 'only the leader writes the status');

    // The canary's proxy streams from B: only B's SubsetMetrics sees its stats; B publishes them.
    clock.advance(5_000);
    b.metrics.ingest('canary-1', 'catalog', { version: 'v2' }, [row(40, 40)], clock.now(), 5_000);
    await b.stats.publish();
    await settle(a, b);
    assert.equal(a.metrics.query({ service: 'catalog', selector: { version: 'v2' }, windowMs: 10_000, now: clock.now() }).requests, 40);
    clock.advance(5_000);
    await settle(a, b);
    assert.equal(statusOf(a)?.lastAnalysis?.result, 'passed');
    assert.equal(statusOf(a)?.lastAnalysis?.requests, 40, 'the leader counted the requests reported to the other control plane');
    assert.equal(statusOf(a)?.canaryWeight, 100);
    assert.equal(statusOf(b)?.canaryWeight, 100, 'the follower follows the step');
    assert.deepEqual(b.ctl.routing(), a.ctl.routing());

    // The leader dies mid-rollout: B takes over from the stored status, with a whole fresh interval.
    const pushesBefore = b.pushes.n;
    a.die();
    assert.equal(b.ctl.isLeader, true, 'elected as soon as A\'s session ended');
    assert.equal(b.ctl.routing()[0]?.canaryWeight, 100, 'no version without the split while the new leader loads');
    await settle(b);
    const s = statusOf(b)!;
    assert.equal(s.phase, 'Progressing');
    assert.equal(s.step, 1);
    assert.match(s.history.at(-1)!.reason, /resumed at step 1 \(100%\) after a change of leading control plane/);
    assert.equal(s.nextAnalysisAt, new Date(clock.now() + 10_000).toISOString());
    assert.equal(b.ctl.routing()[0]?.canaryWeight, 100, 'the split is kept through the handover');
    assert.ok(b.pushes.n > pushesBefore);

    clock.advance(5_000);
    b.metrics.ingest('canary-1', 'catalog', { version: 'v2' }, [row(30, 30)], clock.now(), 5_000);
    clock.advance(5_000);
    await settle(b);
    assert.equal(statusOf(b)?.phase, 'Succeeded');
    const writes = mem.blobWrites.filter((w) => w.key === ROLLOUT_STATUS_BLOB);
    assert.equal(writes.at(-1)?.session, b.store.sessionId);
    b.die();
  });

  it('a follower never analyses: its timers do not run and it writes nothing', async () => {
    const { mem, clock, a, b, applyRollout } = await twoReplicas();
    await applyRollout();
    a.metrics.ingest('canary-1', 'catalog', { version: 'v2' }, [row(40, 40)], clock.now() + 5_000, 5_000);
    for (let i = 0; i < 3; i++) { clock.advance(10_000); await settle(a, b); }
    assert.equal(statusOf(b)?.phase, statusOf(a)?.phase);
    const writers = new Set(mem.blobWrites.filter((w) => w.key === ROLLOUT_STATUS_BLOB).map((w) => w.session));
    assert.deepEqual([...writers], [a.store.sessionId]);
    a.die(); b.die();
  });

  it('a leader that lost its leadership without noticing (cut off from the store) cannot overwrite the new leader\'s status', async () => {
    const { mem, clock, a, b, applyRollout } = await twoReplicas({ bCampaigns: false });
    await applyRollout();
    // The store hands the leadership to B while A is not told (its lease expired behind a partition).
    mem.leaders.set('rollouts', b.store.sessionId);
    b.ctl.setLeader(true);
    await settle(a, b);
    const before = mem.blobWrites.length;
    a.metrics.ingest('canary-1', 'catalog', { version: 'v2' }, [row(40, 40)], clock.now() + 5_000, 5_000);
    clock.advance(10_000);
    await settle(a, b);
    assert.equal(a.ctl.isLeader, false, 'the refused write made A a follower');
    assert.ok(mem.blobWrites.slice(before).every((w) => w.session === b.store.sessionId), 'A wrote nothing');
    assert.deepEqual(a.ctl.list(), b.ctl.list(), 'A now serves B\'s status');
    await assert.rejects(a.ctl.abort('nope'), (err: unknown) => err instanceof RolloutActionError && err.status === 404);
    a.die(); b.die();
  });

  it('promote and abort on a follower run on the leader and the follower shows the result when it answers', async () => {
    const { mem, clock, a, b, applyRollout } = await twoReplicas();
    await applyRollout();

    const promoted = await b.ctl.promote('catalog');
    assert.equal(promoted.phase, 'Succeeded');
    assert.equal(statusOf(b)?.phase, 'Succeeded', 'the follower\'s API shows it as soon as the call returns');
    assert.equal(statusOf(a)?.phase, 'Succeeded');
    const aborted = await b.ctl.abort('catalog');
    assert.equal(aborted.phase, 'Aborted');
    assert.equal(b.ctl.routing()[0]?.canaryWeight, 0);
    await assert.rejects(b.ctl.promote('nope'), (err: unknown) => err instanceof RolloutActionError && err.status === 404);
    const writers = new Set(mem.blobWrites.filter((w) => w.key === ROLLOUT_STATUS_BLOB).map((w) => w.session));
    assert.deepEqual([...writers], [a.store.sessionId], 'the follower never wrote the status');
    a.die(); b.die();
  });

  it('a refusal on the leader reaches the follower\'s caller; without a leader the call fails with a clear 503', async () => {
    const notReady: RolloutInstance[] = [{ labels: { version: 'v1' }, ready: true }, { labels: { version: 'v2' }, ready: false }];
    // B follows but does not campaign: once A dies nobody leads.
    const { clock, a, b, applyRollout } = await twoReplicas({ a: { instances: notReady }, b: { timeoutMs: 200 }, bCampaigns: false });
    await applyRollout();
    assert.equal(statusOf(b)?.phase, 'Pending');
    await assert.rejects(b.ctl.promote('catalog'), (err: unknown) => err instanceof RolloutActionError && err.status === 409 && /no ready instance/.test(err.message));
    a.die();
    await assert.rejects(b.ctl.promote('catalog'), (err: unknown) => err instanceof RolloutActionError && err.status === 503 && /no answer from the control plane leading the rollouts within 200 ms/.test(err.message));
    b.die();
  });
});

describe('SharedSubsetStats', () => {
  it('publishes only when there is something, and a reader adds each publish once even when it sees only the later of two', async () => {
    const mem = new SharedMemory();
    const sa = mem.session();
    const sb = mem.session();
    const ma = new SubsetMetrics();
    const mb = new SubsetMetrics();
    ma.track(['catalog']);
    mb.track(['catalog']);
    const pa = new SharedSubsetStats({ store: sa, metrics: ma });
    const pb = new SharedSubsetStats({ store: sb, metrics: mb });
    await pa.publish();
    assert.equal(pa.published, 0, 'nothing reported: nothing written');

    ma.ingest('c1', 'catalog', { version: 'v2' }, [row(10, 9)], 1_000, 1_000);
    ma.ingest('c1', 'catalog', { version: 'v2' }, [row(5, 5)], 2_000, 1_000);
    ma.ingest('other', 'unrelated', { version: 'v2' }, [{ ...row(7, 7), destination: 'unrelated' }], 2_000, 1_000);
    await pa.publish();
    ma.ingest('c1', 'catalog', { version: 'v2' }, [row(20, 20)], 3_000, 1_000);
    await pa.publish();
    assert.equal(pa.published, 2);
    // B reads only after both puts, and twice: both batches, once each.
    const change = { type: 'session-value', section: 'rollout-stats', session: sa.sessionId, op: 'put' } as const;
    pb.onChange(change);
    pb.onChange(change);
    await pb.idle();
    const q = mb.query({ service: 'catalog', selector: { version: 'v2' }, windowMs: 10_000, now: 3_000 });
    assert.equal(q.requests, 35);
    assert.equal(q.successes, 34);
    assert.equal(q.instances, 1);
    assert.deepEqual(ma.takeShared(), [], 'taken by the publish');
  });

  it('publishes at most MAX_SHARED_REPORTS instances at a time and counts the rest', async () => {
    const mem = new SharedMemory();
    const sa = mem.session();
    const m = new SubsetMetrics();
    m.track(['catalog']);
    for (let i = 0; i < MAX_SHARED_REPORTS + 5; i++) m.ingest(`c${i}`, 'catalog', { version: 'v2' }, [row(1, 1)], 1_000, 1_000);
    const drops: number[] = [];
    const p = new SharedSubsetStats({ store: sa, metrics: m, onDropped: (n) => drops.push(n) });
    await p.publish();
    const value = JSON.parse((await sa.getSessionValue('rollout-stats', sa.sessionId))!) as { batches: { reports: unknown[] }[] };
    assert.equal(value.batches[0]!.reports.length, MAX_SHARED_REPORTS);
    assert.deepEqual(drops, [5]);
  });

  it('skips malformed shared reports and services without a Rollout', () => {
    const m = new SubsetMetrics();
    m.track(['catalog']);
    const ok = { instance: 'i', service: 'catalog', labels: { version: 'v2' }, start: 0, end: 1000, requests: 3, successes: 3, latency: [3] };
    m.ingestShared('s1', [
      ok,
      { ...ok, requests: -1 }, { ...ok, end: Number.NaN }, { ...ok, start: 2000 }, { ...ok, service: 'other' },
      { ...ok, latency: 'x' as never }, null as never,
    ]);
    assert.equal(m.query({ service: 'catalog', selector: { version: 'v2' }, windowMs: 10_000, now: 1000 }).requests, 3);
  });
});
