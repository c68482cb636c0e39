import { afterEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from '../../../src/control-plane/core/registry.js';
import { openStore, tempDir } from './fixtures.js';
import { EmbeddedStore } from '../../../src/control-plane/adapters/store/embedded.js';
import type { StoreChange } from '../../../src/control-plane/core/ports.js';

const info = (id: string, service = 'web') => ({ id, service, address: '127.0.0.1:7000', protocol: 'http' as const, labels: { version: 'v1' } });

describe('Registry', () => {
  afterEach(() => mock.timers.reset());

  it('keeps a disconnected instance for the grace period, then removes it', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    const registry = new Registry(await openStore(), { graceMs: 15_000 });
    const removed: string[] = [];
    registry.on('removed', (id) => removed.push(id));
    const lease = registry.connect(info('w1'));
    registry.disconnect('w1', lease);
    assert.equal(registry.get('w1')?.connected, false);
    assert.ok(registry.hasService('web'));
    mock.timers.tick(14_999);
    assert.ok(registry.get('w1'), 'still there before the grace period ends');
    mock.timers.tick(1);
    assert.equal(registry.get('w1'), undefined);
    assert.deepEqual(removed, ['w1']);
    assert.equal(registry.hasService('web'), false);
    await registry.close();
  });

  it('a reconnect with the same id cancels the removal', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    const registry = new Registry(await openStore(), { graceMs: 1000 });
    const lease = registry.connect(info('w1'));
    registry.disconnect('w1', lease);
    mock.timers.tick(500);
    registry.connect(info('w1'));
    mock.timers.tick(5000);
    assert.equal(registry.get('w1')?.connected, true);
    await registry.close();
  });

  it('ignores a disconnect of a stale connection (the instance already reconnected)', async () => {
    const registry = new Registry(await openStore(), { graceMs: 1000 });
    const old = registry.connect(info('w1'));
    registry.connect(info('w1'));
    registry.disconnect('w1', old);
    assert.equal(registry.get('w1')?.connected, true);
    await registry.close();
  });

  it('removes at once on goodbye (deregister)', async () => {
    const registry = new Registry(await openStore());
    let changes = 0;
    registry.on('change', () => changes++);
    registry.connect(info('w1'));
    assert.equal(registry.deregister('w1'), true);
    assert.equal(registry.get('w1'), undefined);
    assert.equal(changes, 2);
    await registry.close();
  });

  it('persists instances: after a restart they are kept as disconnected until their grace period ends', async () => {
    const dir = await tempDir();
    const store = await EmbeddedStore.open(dir, { fsync: false });
    const first = new Registry(store);
    first.connect(info('w1'));
    first.connect(info('a1', 'api'));
    await first.close();
    await store.close();

    mock.timers.enable({ apis: ['setTimeout'] });
    const reopened = await EmbeddedStore.open(dir, { fsync: false });
    const second = new Registry(reopened, { graceMs: 15_000 });
    await second.load();
    assert.deepEqual(second.list().map((i) => [i.info.id, i.connected, i.restored]), [['a1', false, true], ['w1', false, true]]);
    second.connect(info('w1'));
    mock.timers.tick(15_000);
    assert.deepEqual(second.list().map((i) => [i.info.id, i.connected]), [['w1', true]]);
    await second.flush();
    assert.deepEqual((await reopened.listInstances()).map((r) => r.info.id), ['w1']);
    await second.close();
    await reopened.close();
  });

  it('batches persistence: many changes share a few writes, the last change of an instance wins', async () => {
    const store = await openStore();
    let puts = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const put = store.putInstance.bind(store);
    store.putInstance = async (r) => { puts++; inFlight++; maxInFlight = Math.max(maxInFlight, inFlight); try { return await put(r); } finally { inFlight--; } };
    const registry = new Registry(store);
    for (let i = 0; i < 200; i++) registry.connect(info(`w${i}`));
    registry.connect(info('gone'));
    registry.deregister('gone');
    await registry.flush();
    assert.equal(puts, 200, 'one put per instance, none for the one that left within the batch');
    assert.equal(maxInFlight, 200, 'issued together: the store shares one write among them');
    const stored = (await store.listInstances()).map((r) => r.info.id);
    assert.equal(stored.length, 200);
    assert.ok(!stored.includes('gone'));
    await registry.close();
  });

  it('shared store: a remote change of an instance in its grace period keeps the grace clock running', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    const store = await openStore();
    await store.putInstance({ info: info('w1'), registeredAt: '2026-01-01T00:00:00.000Z' });
    // The embedded store standing in for a shared one: remote changes are sent by hand.
    let listener: ((c: StoreChange) => void) | undefined;
    Object.defineProperty(store, 'shared', { value: true });
    store.watch = (l) => { listener = l; return () => { listener = undefined; }; };
    const registry = new Registry(store, { graceMs: 1000 });
    await registry.load();
    assert.equal(registry.get('w1')?.restored, true);
    mock.timers.tick(600);
    // Another control plane rewrote the record (new labels) while it holds no stream of it.
    await store.putInstance({ info: { ...info('w1'), labels: { version: 'v2' } }, registeredAt: '2026-01-01T00:00:00.000Z' });
    listener!({ type: 'instance', id: 'w1', op: 'put', remote: true });
    for (let i = 0; i < 50 && registry.get('w1')?.info.labels.version !== 'v2'; i++) await new Promise((r) => setImmediate(r));
    assert.equal(registry.get('w1')?.info.labels.version, 'v2', 'the remote change was taken');
    assert.equal(registry.get('w1')?.connected, false);
    mock.timers.tick(400);
    assert.equal(registry.get('w1'), undefined, 'removed when the first grace period ends, not later');
    await registry.close();
  });
});
