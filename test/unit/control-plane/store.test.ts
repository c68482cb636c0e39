import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Resource } from '../../../src/api/schema/resources.js';
import { EmbeddedStore } from '../../../src/control-plane/adapters/store/embedded.js';
import { service, tempDir } from './fixtures.js';

describe('EmbeddedStore', () => {
  it('persists resources, instances, blobs and counters across a reopen', async () => {
    const dir = await tempDir();
    const store = await EmbeddedStore.open(dir);
    await store.writeResources([Resource.parse(service('a')), Resource.parse(service('b'))]);
    await store.deleteResource('Service', 'b');
    await store.putInstance({ info: { id: 'i1', service: 'a', address: '127.0.0.1:1', protocol: 'http', labels: {} }, registeredAt: '2026-01-01T00:00:00Z' });
    await store.putBlob('secret', 'value', { secret: true });
    assert.equal(await store.putBlobIfAbsent('secret', 'other'), 'value');
    await store.increment('v');
    await store.increment('v');
    await store.close();

    const reopened = await EmbeddedStore.open(dir);
    assert.deepEqual((await reopened.listResources()).map((r) => r.metadata.name), ['a']);
    assert.equal((await reopened.getResource('Service', 'a'))?.metadata.name, 'a');
    assert.deepEqual((await reopened.listInstances()).map((i) => i.info.id), ['i1']);
    assert.equal(await reopened.getBlob('secret'), 'value');
    assert.equal(await reopened.increment('v'), 3);
    await reopened.close();
  });

  it('writes the state file with owner-only permissions and leaves no temporary file', async () => {
    const dir = await tempDir();
    const store = await EmbeddedStore.open(dir);
    await store.putBlob('k', 'v', { secret: true });
    await store.close();
    assert.equal((await stat(join(dir, 'store.json'))).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), []);
  });

  it('serializes concurrent writes without losing any', async () => {
    const store = await EmbeddedStore.open(await tempDir(), { fsync: false });
    await Promise.all(Array.from({ length: 50 }, () => store.increment('n')));
    assert.equal(await store.getCounter('n'), 50);
    await store.close();
  });

  it('reports resource changes to watchers', async () => {
    const store = await EmbeddedStore.open(await tempDir(), { fsync: false });
    const seen: string[] = [];
    store.watch((c) => { if (c.type === 'resource') seen.push(`${c.op} ${c.kind}/${c.name}`); });
    await store.writeResources([Resource.parse(service('a'))]);
    await store.deleteResource('Service', 'a');
    assert.deepEqual(seen, ['put Service/a', 'delete Service/a']);
    await store.close();
  });

  it('refuses a data dir in use by another live process', async () => {
    const dir = await tempDir();
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'store.lock'), String(process.ppid));
    await assert.rejects(EmbeddedStore.open(dir), /in use by another control plane/);
  });

  it('takes over a stale lock', async () => {
    const dir = await tempDir();
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'store.lock'), '999999999');
    const store = await EmbeddedStore.open(dir);
    await store.close();
  });
});
