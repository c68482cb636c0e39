/**
 * How a Rollout's weight reaches the proxies' HTTPRoutes (core/rollout-routing.ts), through the compiler.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Resource, type ResourceOf } from '../../../src/api/schema/resources.js';
import { Snapshot, SnapshotDelta } from '../../../src/api/schema/snapshot.js';
import { ServerMessage } from '../../../src/api/schema/xds.js';
import { SnapshotCompiler, compileSnapshot } from '../../../src/control-plane/core/compiler.js';
import { applyRolloutSplits, splitApplies, syntheticRouteName, type RolloutRouting } from '../../../src/control-plane/core/rollout-routing.js';
import type { InstanceState } from '../../../src/control-plane/core/registry.js';
import { compileRouteTable } from '../../../src/proxy/routing/route-table.js';
import { API, httpRoute, openStore, service } from './fixtures.js';

const parse = (docs: unknown[]) => docs.map((d) => Resource.parse(d));
const catalog = (canaryWeight: number, rollout = 'catalog-rollout'): RolloutRouting => ({ rollout, service: 'catalog', stable: { version: 'v1' }, canary: { version: 'v2' }, canaryWeight });

function inst(id: string, labels: Record<string, string>): InstanceState {
  return { info: { id, service: 'catalog', address: '127.0.0.1:7000', protocol: 'http', labels }, registeredAt: '2026-01-01T00:00:00Z', connected: true };
}
const instances = [inst('c1', { version: 'v1' }), inst('c2', { version: 'v2' })];

describe('Rollout splits in the compiled HTTPRoutes', () => {
  it('a service without HTTPRoutes gets one route carrying the split, valid for the proxy\'s schema', () => {
    const resources = parse([service('catalog'), service('web')]);
    const snap = compileSnapshot({ service: 'web', version: '3', trustDomain: 'td', resources, instances, rollouts: [catalog(25)] });
    assert.equal(snap.httpRoutes.length, 1);
    const route = snap.httpRoutes[0]!;
    assert.equal(route.metadata.name, 'rollout-catalog-rollout');
    assert.deepEqual(route.spec.parentRefs, [{ name: 'catalog' }]);
    assert.deepEqual(route.spec.rules, [{ backendRefs: [
      { name: 'catalog', subset: { version: 'v1' }, weight: 75 },
      { name: 'catalog', subset: { version: 'v2' }, weight: 25 },
    ] }]);
    assert.doesNotThrow(() => Snapshot.parse(snap));
    // The proxy's route table sends everything to that rule.
    const table = compileRouteTable('catalog', snap.httpRoutes);
    assert.equal(table.match({ method: 'GET', path: '/anything', headers: {} } as never)?.name, 'rollout-catalog-rollout/0');
  });

  it('without a Rollout in force the routes are the resources\' own', () => {
    const resources = parse([service('catalog'), httpRoute('r', 'catalog', [{ name: 'catalog' }])]);
    const snap = compileSnapshot({ service: 'web', version: '1', trustDomain: 'td', resources, instances });
    assert.deepEqual(snap.httpRoutes[0]!.spec.rules[0]!.backendRefs, [{ name: 'catalog', weight: 1 }]);
  });

  it('splits backendRefs to the service without a subset and rules without backendRefs; leaves explicit subsets and other services alone', () => {
    const routes = parse([
      { apiVersion: API, kind: 'HTTPRoute', metadata: { name: 'catalog-routes' }, spec: {
        parentRefs: [{ name: 'catalog' }],
        rules: [
          { matches: [{ path: { type: 'PathPrefix', value: '/beta' } }], backendRefs: [{ name: 'catalog', subset: { version: 'v2' } }] },
          { matches: [{ path: { type: 'PathPrefix', value: '/mixed' } }], backendRefs: [{ name: 'catalog', weight: 3 }, { name: 'legacy', weight: 1 }] },
          { matches: [{ path: { type: 'PathPrefix', value: '/' } }] },
        ],
      } },
      httpRoute('web-routes', 'web', [{ name: 'web' }]),
    ]) as ResourceOf<'HTTPRoute'>[];
    const out = applyRolloutSplits(routes, [catalog(10)]);
    assert.equal(out.length, 2, 'no route added: one is attached to the service');
    const rules = out[0]!.spec.rules;
    assert.deepEqual(rules[0]!.backendRefs, [{ name: 'catalog', subset: { version: 'v2' }, weight: 1 }], 'an explicit subset is the user\'s');
    assert.deepEqual(rules[1]!.backendRefs, [
      { name: 'catalog', subset: { version: 'v1' }, weight: 270 },
      { name: 'catalog', subset: { version: 'v2' }, weight: 30 },
      { name: 'legacy', weight: 1 },
    ], 'the service\'s share (3 of 4) is split 90/10; legacy keeps its share');
    assert.deepEqual(rules[2]!.backendRefs, [
      { name: 'catalog', subset: { version: 'v1' }, weight: 90 },
      { name: 'catalog', subset: { version: 'v2' }, weight: 10 },
    ]);
    assert.equal(rules[2]!.matches?.[0]?.path?.value, '/', 'matches are kept');
    assert.equal(out[1], routes[1], 'routes without the service are the same objects');
    assert.deepEqual(routes[0]!.spec.rules[2]!.backendRefs, undefined, 'the input is not modified');
  });

  it('0% and 100% leave one side with weight 0; huge weights are scaled within the schema bound', () => {
    const [route] = parse([httpRoute('r', 'catalog', [{ name: 'catalog', weight: 500_000 }, { name: 'other', weight: 500_000 }])]) as ResourceOf<'HTTPRoute'>[];
    const zero = applyRolloutSplits([route!], [catalog(0)])[0]!.spec.rules[0]!.backendRefs!;
    assert.deepEqual(zero.map((b) => b.weight), [1_000_000, 0, 10_000]);
    const full = applyRolloutSplits([route!], [catalog(100)])[0]!.spec.rules[0]!.backendRefs!;
    assert.deepEqual(full.map((b) => b.weight), [0, 1_000_000, 10_000]);
    assert.doesNotThrow(() => Resource.parse(applyRolloutSplits([route!], [catalog(37)])[0]));
  });

  it('splitApplies: false only when every route to the service names its subsets', () => {
    const explicit = parse([httpRoute('canary', 'catalog', [{ name: 'catalog', subset: { version: 'v1' }, weight: 9 }, { name: 'catalog', subset: { version: 'v2' }, weight: 1 }])]) as ResourceOf<'HTTPRoute'>[];
    assert.equal(splitApplies([], 'catalog'), true, 'no route: one is added');
    assert.equal(splitApplies(explicit, 'catalog'), false);
    assert.equal(splitApplies(explicit, 'web'), true);
    const plain = parse([httpRoute('from-web', 'web', [{ name: 'catalog' }])]) as ResourceOf<'HTTPRoute'>[];
    assert.equal(splitApplies([...explicit, ...plain], 'catalog'), true, 'a backendRef without a subset anywhere');
    assert.deepEqual(applyRolloutSplits(explicit, [catalog(50)]), explicit, 'nothing to split');
  });

  it('names the added route uniquely within 63 characters', () => {
    assert.equal(syntheticRouteName('a', new Set()), 'rollout-a');
    assert.equal(syntheticRouteName('a', new Set(['rollout-a'])), 'rollout-a-2');
    const long = 'x'.repeat(63);
    const name = syntheticRouteName(long, new Set([`rollout-${long}`.slice(0, 63)]));
    assert.ok(name.length <= 63 && name.endsWith('-2'), name);
  });

  it('SnapshotCompiler reads the splits in force at each version: a weight change is a new version and a delta', async () => {
    const store = await openStore();
    await store.writeResources(parse([service('catalog'), service('web')]));
    let weight = 10;
    const compiler = new SnapshotCompiler(store, { list: () => instances }, 'td', { routing: () => [catalog(weight)] });
    const v1 = await compiler.init();
    const first = await compiler.snapshotFor('web');
    assert.deepEqual(first.httpRoutes[0]!.spec.rules[0]!.backendRefs!.map((b) => b.weight), [90, 10]);
    const base = v1;
    weight = 50;
    await compiler.bump();
    const second = await compiler.snapshotFor('web');
    assert.deepEqual(second.httpRoutes[0]!.spec.rules[0]!.backendRefs!.map((b) => b.weight), [50, 50]);
    const wire = await compiler.wireFor('web', base);
    assert.equal(wire.baseVersion, base);
    const msg = ServerMessage.parse(JSON.parse(Buffer.concat(wire.chunks).toString('utf8')));
    assert.equal(msg.type, 'delta');
    const delta = SnapshotDelta.parse((msg as { delta: unknown }).delta);
    assert.deepEqual(delta.httpRoutes?.map((r) => r.spec.rules[0]!.backendRefs!.map((b) => b.weight)), [[50, 50]]);
    await store.close();
  });
});
