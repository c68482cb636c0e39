/** What `apply` refuses in a Rollout (resources.ts RolloutSpec, resource-service.ts: one Rollout per service). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ResourceService } from '../../../src/control-plane/core/resource-service.js';
import { ValidationError } from '../../../src/api/schema/validate.js';
import { API, openStore, service } from './fixtures.js';

const rollout = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: API, kind: 'Rollout', metadata: { name },
  spec: { service: 'catalog', stable: { version: 'v1' }, canary: { version: 'v2' }, ...spec },
});

async function refused(docs: unknown[]): Promise<{ path: string; message: string }[]> {
  const svc = new ResourceService(await openStore(), { hasService: () => false });
  await svc.apply([service('catalog')]);
  try {
    await svc.apply(docs);
  } catch (err) {
    assert.ok(err instanceof ValidationError);
    return err.errors;
  }
  assert.fail('expected the batch to be refused');
}

describe('Rollout validation', () => {
  it('accepts the SPEC example and fills the defaults', async () => {
    const store = await openStore();
    const svc = new ResourceService(store, { hasService: () => false });
    await svc.apply([service('catalog'), rollout('ro', { steps: [5, 25, 50, 100], interval: '30s', analysis: { minSuccessRate: 99, maxP99Latency: '500ms', minRequests: 20 } })]);
    const stored = await store.getResource('Rollout', 'ro');
    assert.equal(stored?.kind, 'Rollout');
    const defaults = await svc.apply([rollout('ro2', {})]).catch((e: unknown) => e);
    assert.ok(defaults instanceof ValidationError, 'a second Rollout for the same service is refused');
  });

  it('refuses stable and canary selectors that an instance could match both, or empty ones', async () => {
    assert.deepEqual((await refused([rollout('ro', { canary: { version: 'v1' } })])).map((e) => e.path), ['resources[0].spec.canary']);
    assert.deepEqual((await refused([rollout('ro', { canary: { track: 'canary' } })])).map((e) => e.path), ['resources[0].spec.canary'],
      'different keys: an instance with both labels would match both');
    assert.deepEqual((await refused([rollout('ro', { stable: {} })])).map((e) => e.path), ['resources[0].spec.stable']);
  });

  it('refuses steps that do not increase or are 0, and an interval outside 1s..1h', async () => {
    assert.deepEqual((await refused([rollout('ro', { steps: [10, 10, 100] })])).map((e) => [e.path, e.message]), [['resources[0].spec.steps[1]', 'steps must increase']]);
    assert.deepEqual((await refused([rollout('ro', { steps: [0, 100] })])).map((e) => e.path), ['resources[0].spec.steps[0]']);
    assert.deepEqual((await refused([rollout('ro', { interval: '500ms' })])).map((e) => [e.path, e.message]), [['resources[0].spec.interval', 'must be between 1s and 1h']]);
    assert.deepEqual((await refused([rollout('ro', { interval: '2h' })])).map((e) => e.path), ['resources[0].spec.interval']);
  });

  it('one Rollout per service, within a batch and against the stored ones; re-applying the same one is fine', async () => {
    const errors = await refused([rollout('a', {}), rollout('b', {})]);
    assert.deepEqual(errors, [{ path: 'resources[1].spec.service', message: 'service catalog already has Rollout a (one Rollout per service)' }]);
    const svc = new ResourceService(await openStore(), { hasService: () => false });
    await svc.apply([service('catalog'), rollout('a', {})]);
    assert.deepEqual((await svc.apply([rollout('a', { interval: '5s' })])).map((r) => r.action), ['configured']);
  });
});
