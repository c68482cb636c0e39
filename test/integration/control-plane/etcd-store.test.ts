/**
 * The etcd Store adapter against a real etcd (Debian's etcd-server on loopback): transactions, compare-and-
 * create, counters under contention, the watch's remote/local flags, live marks across sessions, and
 * recovery when etcd goes away for a while.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdStore } from '../../../src/control-plane/adapters/store/etcd.js';
import type { InstanceRecord, StoreChange } from '../../../src/control-plane/core/ports.js';
import type { Resource } from '../../../src/api/schema/resources.js';
import { pollUntil } from '../../../src/shared/poll.js';
import { Registry } from '../../../src/control-plane/core/registry.js';
import { startEtcd, type RunningEtcd } from '../../helpers/etcd.js';

const svc = (name: string) => ({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name }, spec: { protocol: 'http' } }) as Resource;
const record = (id: string, disconnectedAt?: string): InstanceRecord => ({
  info: { id, service: 'web', address: '127.0.0.1:7000', protocol: 'http', labels: {} },
  registeredAt: '2026-01-01T00:00:00.000Z',
  ...(disconnectedAt ? { disconnectedAt } : {}),
});

describe('EtcdStore (real etcd)', () => {
  let etcd: RunningEtcd;
  const open: EtcdStore[] = [];
  let prefixes = 0;
  const stores = async (n: number, opts: { leaseTtlSeconds?: number } = {}): Promise<EtcdStore[]> => {
    const prefix = `/store-test-${process.pid}-${++prefixes}/`;
    const list = await Promise.all(Array.from({ length: n }, () => EtcdStore.open({ endpoints: [etcd.endpoint], prefix, ...opts })));
    open.push(...list);
    return list;
  };
  const changes = (store: EtcdStore): StoreChange[] => {
    const seen: StoreChange[] = [];
    store.watch((c) => seen.push(c));
    return seen;
  };

  before(async () => { etcd = await startEtcd(); });
  after(async () => {
    await Promise.all(open.map((s) => s.close()));
    await etcd?.stop();
  });

  it('writes resources in one transaction: all of them, or none when etcd refuses the transaction', async () => {
    const [a, b] = await stores(2);
    await a!.writeResources([svc('one'), svc('two')]);
    assert.deepEqual((await b!.listResources('Service')).map((r) => r.metadata.name), ['one', 'two']);
    await b!.writeResources([svc('three')], [{ kind: 'Service', name: 'one' }]);
    assert.deepEqual((await a!.listResources()).map((r) => r.metadata.name), ['three', 'two']);
    // More changes than etcd's default --max-txn-ops (128): refused whole, with the reason.
    const many = Array.from({ length: 200 }, (_, i) => svc(`bulk-${i}`));
    await assert.rejects(a!.writeResources(many), /max-txn-ops/);
    assert.equal((await a!.listResources()).length, 2, 'nothing of the refused transaction was written');
    assert.equal(await a!.deleteResource('Service', 'two'), true);
    assert.equal(await a!.deleteResource('Service', 'two'), false);
  });

  it('compare-and-create: concurrent writers of a blob all end up with the first one\'s value', async () => {
    const list = await stores(5);
    const values = await Promise.all(list.map((s, i) => s.putBlobIfAbsent('ca', `value-${i}`)));
    assert.equal(new Set(values).size, 1);
    assert.equal(await list[0]!.getBlob('ca'), values[0]);
  });

  it('increments atomically under contention (compare-and-swap): no lost update, no duplicate', async () => {
    const list = await stores(3);
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => list[i % 3]!.increment('n')));
    assert.deepEqual([...results].sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i + 1));
    assert.equal(await list[0]!.increment('n', 1000), 1030);
    assert.equal(await list[1]!.getCounter('n'), 1030);
  });

  it('reports other writers\' changes as remote and its own instance writes as local', async () => {
    const [a, b] = await stores(2);
    const seenByB = changes(b!);
    const seenByA = changes(a!);
    await a!.writeResources([svc('watched')]);
    await a!.putInstance(record('i1'));
    await pollUntil(() => seenByB.some((c) => c.type === 'live' && c.id === 'i1'), { timeoutMs: 5000, what: 'B to see the live mark' });
    assert.ok(seenByB.some((c) => c.type === 'resource' && c.name === 'watched' && c.op === 'put'));
    assert.ok(seenByB.some((c) => c.type === 'instance' && c.id === 'i1' && c.remote));
    await pollUntil(() => seenByA.some((c) => c.type === 'live' && c.id === 'i1'), { timeoutMs: 5000, what: 'A to see its own mark' });
    assert.ok(seenByA.filter((c) => c.type === 'instance' || c.type === 'live').every((c) => !(c as { remote: boolean }).remote), 'A wrote them');
  });

  it('live marks: a disconnect or delete is refused while another session holds the instance, and a session\'s end clears its marks', async () => {
    const [a, b] = await stores(2);
    await a!.putInstance(record('w1'));
    assert.equal((await b!.getInstance('w1'))?.liveOn, a!.sessionId);
    // The proxy moved to B: B holds it now; A's late disconnect and delete change nothing.
    await b!.putInstance(record('w1'));
    assert.equal(await a!.putInstance(record('w1', '2026-01-01T00:01:00.000Z')), false);
    assert.equal(await a!.deleteInstance('w1'), false);
    const held = await a!.getInstance('w1');
    assert.equal(held?.liveOn, b!.sessionId);
    assert.equal(held?.record.disconnectedAt, undefined);
    // B's disconnect is its own to make.
    assert.equal(await b!.putInstance(record('w1', '2026-01-01T00:02:00.000Z')), true);
    assert.equal((await a!.getInstance('w1'))?.liveOn, undefined);
    // A session that ends (close revokes its lease) leaves its records but not its marks.
    await a!.putInstance(record('w2'));
    assert.equal((await b!.listStoredInstances()).find((s) => s.record.info.id === 'w2')?.liveOn, a!.sessionId);
    await a!.close();
    const after = (await b!.listStoredInstances()).find((s) => s.record.info.id === 'w2');
    assert.ok(after, 'the record stays (grace period)');
    assert.equal(after.liveOn, undefined, 'no control plane holds it any more');
    assert.equal(await b!.deleteInstance('w2'), true);
  });

  it('advertises each session\'s xDS address until the session ends', async () => {
    const [a, b] = await stores(2);
    await a!.advertise('127.0.0.1:1001');
    await b!.advertise('127.0.0.1:1002');
    assert.deepEqual(await a!.controlPlaneAddresses(), ['127.0.0.1:1001', '127.0.0.1:1002']);
    assert.deepEqual(await b!.controlPlaneAddresses(), ['127.0.0.1:1002', '127.0.0.1:1001']);
    await a!.close();
    assert.deepEqual(await b!.controlPlaneAddresses(), ['127.0.0.1:1002']);
  });

  it('survives etcd going away for a while: writes work again, the watch resumes, and the live marks are back', async () => {
    const [a, b] = await stores(2, { leaseTtlSeconds: 2 });
    await a!.putInstance(record('r1'));
    const seenByB = changes(b!);
    await etcd.kill();
    await assert.rejects(a!.putBlob('during', 'x'));
    // An outage longer than twice the lease TTL: the client gives the lease up ('lost'), and a new one is
    // granted once etcd is back (the old one, which etcd restores at restart, must not take A's marks with it).
    await new Promise((r) => setTimeout(r, 5000));
    await etcd.restart();
    await pollUntil(async () => { await a!.putBlob('after', 'x'); return true; }, { timeoutMs: 30_000, what: 'writes to work again' });
    // Each client's circuit breaker may still be open for a few seconds after etcd is back.
    await pollUntil(async () => { await b!.writeResources([svc('after-outage')]); return true; }, { timeoutMs: 30_000, what: 'B to write again' });
    await pollUntil(() => seenByB.some((c) => c.type === 'resource' && c.name === 'after-outage'), { timeoutMs: 30_000, what: 'the watch to resume' });
    await pollUntil(async () => (await b!.getInstance('r1'))?.liveOn === a!.sessionId, { timeoutMs: 30_000, what: 'A to hold its instance again' });
    // Past the old lease's TTL (2 s from the restart): the mark is on the new lease and stays.
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      assert.equal((await b!.getInstance('r1'))?.liveOn, a!.sessionId, 'A keeps holding its instance');
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  it('registries of two control planes follow each other: a move, a stale disconnect, a dead session and its grace period', async () => {
    const [sa, sb] = await stores(2);
    const a = new Registry(sa!, { graceMs: 1500 });
    const b = new Registry(sb!, { graceMs: 1500 });
    await Promise.all([a.load(), b.load()]);
    const info = (id: string) => ({ id, service: 'web', address: '127.0.0.1:7000', protocol: 'http' as const, labels: {} });
    const on = (r: Registry, id: string) => r.get(id);

    const leaseOnA = a.connect(info('x'));
    await pollUntil(() => on(b, 'x')?.connected && on(b, 'x')?.elsewhere, { timeoutMs: 5000, what: 'B to see x connected on A' });
    // The proxy moves to B; A notices its old stream close later: that changes nothing.
    b.connect(info('x'));
    await pollUntil(() => on(a, 'x')?.elsewhere, { timeoutMs: 5000, what: 'A to see x moved to B' });
    a.disconnect('x', leaseOnA);
    await a.flush();
    assert.equal(on(a, 'x')?.connected, true);
    assert.equal((await sa!.getInstance('x'))?.liveOn, sb!.sessionId);
    assert.equal(on(b, 'x')?.elsewhere, undefined, 'B holds it');

    // y on A; A's session ends (its process died): B keeps y, routable but not connected, then removes it.
    a.connect(info('y'));
    await pollUntil(() => on(b, 'y')?.connected, { timeoutMs: 5000, what: 'B to see y' });
    await a.close();
    await sa!.close();
    await pollUntil(() => on(b, 'y') && !on(b, 'y')!.connected && on(b, 'y')!.restored, { timeoutMs: 5000, what: 'B to see y lose its control plane' });
    await pollUntil(() => on(b, 'y') === undefined, { timeoutMs: 10_000, what: 'the grace period to end' });
    await b.flush();
    assert.equal(await sb!.getInstance('y'), undefined, 'removed from the store');
    assert.equal(on(b, 'x')?.connected, true, 'x, held by B, stays');
    await b.close();
  });

  it('leadership: one of several campaigners leads, writes fenced by it succeed only for the leader, and a dead leader is replaced', async () => {
    const list = await stores(3);
    const leading = list.map(() => [] as boolean[]);
    list.forEach((s, i) => s.campaign('rollouts', (l) => leading[i]!.push(l)));
    const leaders = () => leading.map((h) => h.at(-1) === true);
    await pollUntil(() => leaders().filter(Boolean).length === 1, { timeoutMs: 10_000, what: 'one leader' });
    const first = leaders().indexOf(true);
    assert.equal(await list[first]!.putBlobAsLeader('rollouts', 'status', 'from-leader'), true);
    const other = (first + 1) % 3;
    assert.equal(await list[other]!.putBlobAsLeader('rollouts', 'status', 'from-follower'), false);
    assert.equal(await list[other]!.getBlob('status'), 'from-leader');

    // Session values live with the session.
    const seen = changes(list[other]!);
    await list[first]!.putSessionValue('rollout-stats', 'v1');
    assert.equal(await list[other]!.getSessionValue('rollout-stats', list[first]!.sessionId), 'v1');

    await list[first]!.close(); // revokes its lease: leadership and values end now
    await pollUntil(() => leaders().filter((l, i) => l && i !== first).length === 1, { timeoutMs: 15_000, what: 'a new leader' });
    const next = leaders().findIndex((l, i) => l && i !== first);
    assert.equal(await list[next]!.putBlobAsLeader('rollouts', 'status', 'from-new-leader'), true);
    assert.equal(await list[other]!.getSessionValue('rollout-stats', list[first]!.sessionId), undefined);
    await pollUntil(() => seen.some((c) => c.type === 'session-value' && c.op === 'delete' && c.session === list[first]!.sessionId), { timeoutMs: 10_000, what: 'the value\'s delete event' });
    assert.ok(seen.some((c) => c.type === 'session-value' && c.op === 'put' && c.section === 'rollout-stats'));
  });
});
