import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ResourceService } from '../../../src/control-plane/core/resource-service.js';
import { ValidationError } from '../../../src/api/schema/validate.js';
import { API, authzPolicy, httpRoute, noRegisteredServices, openStore, service, trafficPolicy } from './fixtures.js';

describe('ResourceService.apply', () => {
  it('is atomic: one bad document in a batch of 3 changes nothing', async () => {
    const store = await openStore();
    const svc = new ResourceService(store, noRegisteredServices);
    let changes = 0;
    store.watch(() => { changes++; });
    await assert.rejects(
      svc.apply([service('a'), httpRoute('r', 'a', [{ name: 'a', weight: 0 }]), service('b')]),
      (err: unknown) => err instanceof ValidationError && err.errors[0]!.path === 'resources[1].spec.rules[0].backendRefs',
    );
    assert.deepEqual(await store.listResources(), []);
    assert.equal(changes, 0);
  });

  it('refuses a reference to an unknown service, with the path', async () => {
    const svc = new ResourceService(await openStore(), noRegisteredServices);
    await assert.rejects(svc.apply([service('web'), httpRoute('r', 'web', [{ name: 'ghost' }])]), (err: unknown) => {
      assert.ok(err instanceof ValidationError);
      assert.deepEqual(err.errors, [{ path: 'resources[1].spec.rules[0].backendRefs[0].name', message: 'unknown service ghost' }]);
      return true;
    });
    await assert.rejects(svc.apply([trafficPolicy('tp', 'ghost')]), /resources\[0\]\.spec\.targetRef\.name: unknown service ghost/);
    await assert.rejects(svc.apply([authzPolicy('ap', 'ghost')]), /unknown service ghost/);
    await assert.rejects(
      svc.apply([{ apiVersion: API, kind: 'Rollout', metadata: { name: 'ro' }, spec: { service: 'ghost', stable: { version: 'v1' }, canary: { version: 'v2' } } }]),
      /resources\[0\]\.spec\.service: unknown service ghost/,
    );
  });

  it('accepts references to a stored Service, a Service in the batch, or a registered service', async () => {
    const store = await openStore();
    const svc = new ResourceService(store, { hasService: (n) => n === 'registered' });
    await svc.apply([service('stored')]);
    const results = await svc.apply([
      service('batch'),
      httpRoute('r1', 'stored', [{ name: 'batch', weight: 1 }, { name: 'registered', weight: 1 }]),
      trafficPolicy('tp', 'registered'),
    ]);
    assert.deepEqual(results.map((r) => r.action), ['created', 'created', 'created']);
  });

  it('dry run reports created, configured and unchanged, and writes nothing', async () => {
    const store = await openStore();
    const svc = new ResourceService(store, noRegisteredServices);
    await svc.apply([service('a', { protocol: 'http' }), service('b', { protocol: 'http' })]);
    const before = await store.listResources();
    const results = await svc.apply([
      service('a', { protocol: 'http' }),
      service('b', { protocol: 'grpc' }),
      service('c'),
    ], { dryRun: true });
    assert.deepEqual(results, [
      { kind: 'Service', name: 'a', action: 'unchanged' },
      { kind: 'Service', name: 'b', action: 'configured' },
      { kind: 'Service', name: 'c', action: 'created' },
    ]);
    assert.deepEqual(await store.listResources(), before);
  });

  it('treats a document equal after defaults as unchanged', async () => {
    const svc = new ResourceService(await openStore(), noRegisteredServices);
    await svc.apply([service('a', {})]);
    const [r] = await svc.apply([service('a', { protocol: 'http' })]);
    assert.equal(r!.action, 'unchanged');
  });

  it('applies, configures and deletes', async () => {
    const store = await openStore();
    const svc = new ResourceService(store, noRegisteredServices);
    assert.deepEqual((await svc.apply([service('a')])).map((r) => r.action), ['created']);
    assert.deepEqual((await svc.apply([service('a', { protocol: 'tcp' })])).map((r) => r.action), ['configured']);
    const stored = await svc.get('Service', 'a');
    assert.equal(stored?.kind === 'Service' && stored.spec.protocol, 'tcp');
    assert.equal(await svc.delete('Service', 'a'), true);
    assert.equal(await svc.delete('Service', 'a'), false);
    assert.equal(await svc.get('Service', 'a'), undefined);
  });

  it('refuses a body that is not an array', async () => {
    const svc = new ResourceService(await openStore(), noRegisteredServices);
    await assert.rejects(svc.apply({} as unknown as unknown[]), ValidationError);
  });
});
