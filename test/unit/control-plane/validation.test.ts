import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ResourceService } from '../../../src/control-plane/core/resource-service.js';
import { ValidationError } from '../../../src/api/schema/validate.js';
import { API, httpRoute, noRegisteredServices, openStore, service, trafficPolicy } from './fixtures.js';

async function refusal(docs: unknown[]): Promise<{ path: string; message: string }[]> {
  const svc = new ResourceService(await openStore(), noRegisteredServices);
  try {
    await svc.apply(docs);
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${String(err)}`);
    return err.errors;
  }
  assert.fail('the batch was accepted');
}

describe('resource validation: exact field paths', () => {
  it('accepts mtls STRICT and PERMISSIVE, and refuses any other mode with its field path', async () => {
    const svc = new ResourceService(await openStore(), noRegisteredServices);
    for (const mtls of ['PERMISSIVE', 'STRICT'] as const) {
      await svc.apply([{ apiVersion: API, kind: 'MeshConfig', metadata: { name: 'default' }, spec: { mtls } }]);
      const stored = (await svc.list('MeshConfig')).find((r) => r.metadata.name === 'default');
      assert.equal((stored?.spec as { mtls?: string } | undefined)?.mtls, mtls);
    }
    const errors = await refusal([{ apiVersion: API, kind: 'MeshConfig', metadata: { name: 'default' }, spec: { mtls: 'DISABLE' } }]);
    assert.deepEqual(errors.map((e) => e.path), ['resources[0].spec.mtls']);
    assert.match(errors[0]!.message, /STRICT|PERMISSIVE/);
  });

  it('refuses a bad duration', async () => {
    const errors = await refusal([service('api'), trafficPolicy('tp', 'api', { timeouts: { connect: '5 seconds' } })]);
    assert.deepEqual(errors.map((e) => e.path), ['resources[1].spec.timeouts.connect']);
    assert.match(errors[0]!.message, /duration/);
  });

  it('refuses a regex that can backtrack exponentially', async () => {
    const route = {
      apiVersion: API, kind: 'HTTPRoute', metadata: { name: 'r' },
      spec: { parentRefs: [{ name: 'api' }], rules: [{ matches: [{ path: { type: 'RegularExpression', value: '(a+)+' } }], backendRefs: [{ name: 'api' }] }] },
    };
    const errors = await refusal([service('api'), route]);
    assert.deepEqual(errors.map((e) => e.path), ['resources[1].spec.rules[0].matches[0].path.value']);
    assert.match(errors[0]!.message, /nested quantifiers/);
  });

  it('refuses weights summing to 0', async () => {
    const errors = await refusal([service('api'), httpRoute('r', 'api', [{ name: 'api', weight: 0 }, { name: 'api', weight: 0 }])]);
    assert.deepEqual(errors.map((e) => e.path), ['resources[1].spec.rules[0].backendRefs']);
    assert.match(errors[0]!.message, /weights sum to 0/);
  });

  it('refuses a negative weight with the path of the weight', async () => {
    const errors = await refusal([service('api'), httpRoute('r', 'api', [{ name: 'api', weight: -1 }])]);
    assert.deepEqual(errors.map((e) => e.path), ['resources[1].spec.rules[0].backendRefs[0].weight']);
  });

  it('refuses an unknown field, naming the field', async () => {
    const errors = await refusal([service('api', { protocol: 'http', prot: 'tcp' })]);
    assert.deepEqual(errors, [{ path: 'resources[0].spec.prot', message: 'unknown field "prot"' }]);
  });

  it('refuses a wrong apiVersion', async () => {
    const errors = await refusal([{ ...service('api'), apiVersion: 'trellis.dev/v1' }]);
    assert.deepEqual(errors.map((e) => e.path), ['resources[0].apiVersion']);
  });

  it('refuses an unknown kind', async () => {
    const errors = await refusal([{ ...service('api'), kind: 'Gateway' }]);
    assert.deepEqual(errors.map((e) => e.path), ['resources[0].kind']);
  });

  it('reports every error of every document', async () => {
    const errors = await refusal([
      service('api', { protocol: 'udp' }),
      { ...service('Bad_Name') },
    ]);
    assert.deepEqual(errors.map((e) => e.path).sort(), ['resources[0].spec.protocol', 'resources[1].metadata.name']);
  });

  it('refuses two documents with the same kind and name', async () => {
    const errors = await refusal([service('api'), service('api', { protocol: 'tcp' })]);
    assert.deepEqual(errors.map((e) => e.path), ['resources[1].metadata.name']);
    assert.match(errors[0]!.message, /duplicate of resources\[0\]/);
  });

  it('the MeshConfig is named default', async () => {
    const errors = await refusal([{ apiVersion: API, kind: 'MeshConfig', metadata: { name: 'mesh' }, spec: {} }]);
    assert.deepEqual(errors.map((e) => e.path), ['resources[0].metadata.name']);
  });
});
