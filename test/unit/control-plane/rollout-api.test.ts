/**
 * The rollout endpoints of the REST API through the SDK (GET /api/v1/rollouts[/SERVICE],
 * POST .../promote|abort), with a real RolloutController on an embedded store: status codes and bodies.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ApiServer } from '../../../src/control-plane/adapters/api/server.js';
import { RolloutController, type RolloutInstance } from '../../../src/control-plane/core/rollouts.js';
import { RolloutStatus } from '../../../src/api/schema/rollout.js';
import { Resource } from '../../../src/api/schema/resources.js';
import { TrellisApiError, TrellisClient } from '../../../src/sdk/client.js';
import { createLogger } from '../../../src/shared/log.js';
import { API, openStore } from './fixtures.js';

describe('rollout API', () => {
  let api: ApiServer;
  let ctl: RolloutController;
  let client: TrellisClient;
  const instances: RolloutInstance[] = [{ labels: { version: 'v1' }, ready: true }, { labels: { version: 'v2' }, ready: false }];

  before(async () => {
    const store = await openStore();
    await store.writeResources([Resource.parse({
      apiVersion: API, kind: 'Rollout', metadata: { name: 'catalog-rollout' },
      spec: { service: 'catalog', stable: { version: 'v1' }, canary: { version: 'v2' }, steps: [10, 100], interval: '1m' },
    })]);
    ctl = new RolloutController({ store, metrics: { query: () => ({ requests: 0, successes: 0, instances: 0 }) }, instances: () => instances, onRoutingChange: () => undefined });
    await ctl.start();
    api = new ApiServer({
      resources: {} as never, tokens: {} as never, queries: {} as never,
      metrics: { contentType: 'text/plain', text: async () => '' },
      status: () => ({}) as never, ready: () => true, adminToken: '', log: createLogger({ component: 'test' }),
      rollouts: ctl,
    });
    client = new TrellisClient({ baseUrl: `http://${await api.listen('127.0.0.1', 0)}` });
  });
  after(async () => { ctl.close(); await api.close(); });

  it('lists and gets statuses that satisfy the published schema', async () => {
    const list = await client.rollouts();
    assert.deepEqual(list.map((s) => [s.name, s.service, s.phase]), [['catalog-rollout', 'catalog', 'Pending']]);
    const one = await client.rolloutStatus('catalog');
    assert.doesNotThrow(() => RolloutStatus.parse(one));
    assert.equal(one.trafficSplit, false);
    await assert.rejects(client.rolloutStatus('ghost'), (err: unknown) => err instanceof TrellisApiError && err.status === 404 && err.code === 'NOT_FOUND');
  });

  it('promote without a ready canary is 409 CONFLICT; abort works from Pending; unknown is 404', async () => {
    await assert.rejects(client.promoteRollout('catalog'), (err: unknown) => err instanceof TrellisApiError && err.status === 409 && err.code === 'CONFLICT' && /canary labels version=v2/.test(err.message));
    const aborted = await client.abortRollout('catalog');
    assert.equal(aborted.phase, 'Aborted');
    assert.equal(aborted.canaryWeight, 0);
    instances[1]!.ready = true;
    assert.equal((await client.promoteRollout('catalog')).phase, 'Succeeded');
    await assert.rejects(client.abortRollout('ghost'), (err: unknown) => err instanceof TrellisApiError && err.status === 404);
    const res = await fetch(`${client.baseUrl}/api/v1/rollouts/catalog/promote`, { method: 'GET' });
    assert.equal(res.status, 405);
  });
});
