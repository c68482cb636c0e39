import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Snapshot } from '../../../src/api/schema/snapshot.js';
import { DEFAULT_MESH_CONFIG, Resource } from '../../../src/api/schema/resources.js';
import { SnapshotCompiler, VERSION_BLOCK, VERSION_CEILING, VERSION_COUNTER, VERSION_RESERVED, compileSnapshot } from '../../../src/control-plane/core/compiler.js';
import { ServerMessage } from '../../../src/api/schema/xds.js';
import { Registry, type InstanceState } from '../../../src/control-plane/core/registry.js';
import { API, authzPolicy, httpRoute, openStore, service, trafficPolicy } from './fixtures.js';

const parse = (docs: unknown[]) => docs.map((d) => Resource.parse(d));

function instance(id: string, svc: string, address: string, labels: Record<string, string> = {}, connected = true, protocol: 'http' | 'grpc' | 'tcp' = 'http'): InstanceState {
  return { info: { id, service: svc, address, protocol, labels }, registeredAt: `2026-01-01T00:00:0${id.length}Z`, connected };
}

describe('compileSnapshot', () => {
  const resources = parse([
    service('api', { protocol: 'grpc', port: 9000 }),
    service('web'),
    httpRoute('web-route', 'web', [{ name: 'web', weight: 90 }, { name: 'web', subset: { version: 'v2' }, weight: 10 }]),
    trafficPolicy('b-policy', 'api', { loadBalancer: { type: 'LeastRequest' } }),
    trafficPolicy('a-policy', 'api', { loadBalancer: { type: 'Random' } }),
    authzPolicy('web-authz', 'web'),
    authzPolicy('api-authz', 'api', 'DENY'),
    { apiVersion: API, kind: 'JWTAuthentication', metadata: { name: 'api-jwt' }, spec: { targetRef: { name: 'api' }, issuer: 'https://issuer', jwks: { inline: '{"keys":[]}' } } },
    { apiVersion: API, kind: 'TCPRoute', metadata: { name: 'db' }, spec: { parentRefs: [{ name: 'api' }], rules: [{ backendRefs: [{ name: 'api' }] }] } },
  ]);
  const instances = [
    instance('web-1', 'web', '127.0.0.1:7001', { version: 'v1' }),
    instance('web-22', 'web', '127.0.0.1:7002', { version: 'v2' }, false),
    instance('cache-1', 'cache', '10.0.0.5:6379', {}, true, 'tcp'),
  ];

  it('builds clusters for Service resources and registered services, with endpoints and the first policy by name', () => {
    const snap = compileSnapshot({ service: 'web', version: '7', trustDomain: 'trellis.local', resources, instances });
    assert.deepEqual(Object.keys(snap.clusters), ['api', 'cache', 'web']);
    assert.equal(snap.clusters.api!.protocol, 'grpc');
    assert.equal(snap.clusters.api!.port, 9000);
    assert.equal(snap.clusters.api!.trafficPolicyName, 'a-policy');
    assert.equal(snap.clusters.api!.trafficPolicy?.loadBalancer?.type, 'Random');
    assert.equal(snap.clusters.cache!.protocol, 'tcp', 'protocol from the first instance when there is no Service resource');
    assert.deepEqual(snap.clusters.web!.endpoints, [
      { id: 'web-1', address: '127.0.0.1:7001', labels: { version: 'v1' }, draining: false },
      { id: 'web-22', address: '127.0.0.1:7002', labels: { version: 'v2' }, draining: true },
    ]);
    assert.equal(snap.version, '7');
    assert.equal(snap.trustDomain, 'trellis.local');
    assert.deepEqual(snap.meshConfig, DEFAULT_MESH_CONFIG);
    assert.doesNotThrow(() => Snapshot.parse(snap), 'the snapshot satisfies the schema proxies validate with');
  });

  it('carries every route, but only the policies targeting the proxy\'s own service', () => {
    const web = compileSnapshot({ service: 'web', version: '1', trustDomain: 'td', resources, instances });
    assert.deepEqual(web.httpRoutes.map((r) => r.metadata.name), ['web-route']);
    assert.deepEqual(web.tcpRoutes.map((r) => r.metadata.name), ['db']);
    assert.deepEqual(web.authorizationPolicies.map((r) => r.metadata.name), ['web-authz']);
    assert.deepEqual(web.jwtAuthentications, []);
    const api = compileSnapshot({ service: 'api', version: '1', trustDomain: 'td', resources, instances });
    assert.deepEqual(api.authorizationPolicies.map((r) => r.metadata.name), ['api-authz']);
    assert.deepEqual(api.jwtAuthentications.map((r) => r.metadata.name), ['api-jwt']);
  });

  it('keeps instances restored after a control-plane restart in rotation (not draining) until they reconnect or expire', () => {
    const restored: InstanceState = { ...instance('web-9', 'web', '127.0.0.1:7009', {}, false), restored: true };
    const snap = compileSnapshot({ service: 'api', version: '1', trustDomain: 'td', resources: [], instances: [restored] });
    assert.equal(snap.clusters.web!.endpoints[0]!.draining, false);
  });

  it('uses the MeshConfig resource when there is one', () => {
    const withMesh = [...resources, ...parse([{ apiVersion: API, kind: 'MeshConfig', metadata: { name: 'default' }, spec: { authorization: { default: 'deny' }, certificateTTL: '1h' } }])];
    const snap = compileSnapshot({ service: 'web', version: '1', trustDomain: 'td', resources: withMesh, instances: [] });
    assert.equal(snap.meshConfig.authorization.default, 'deny');
    assert.equal(snap.meshConfig.certificateTTL, '1h');
  });
});

describe('SnapshotCompiler versions', () => {
  it('increases on every bump and keeps increasing across a restart (persisted counter)', async () => {
    const store = await openStore();
    const registry = new Registry(store);
    const first = new SnapshotCompiler(store, registry, 'td');
    const v1 = Number(await first.init());
    const v2 = Number(await first.bump());
    assert.ok(v2 > v1);
    const snap = await first.snapshotFor('web');
    assert.equal(snap.version, String(v2));
    const restarted = new SnapshotCompiler(store, registry, 'td');
    assert.ok(Number(await restarted.init()) > v2);
  });

  it('reflects the registry and resources at the next version', async () => {
    const store = await openStore();
    const registry = new Registry(store);
    const compiler = new SnapshotCompiler(store, registry, 'td');
    await compiler.init();
    assert.deepEqual((await compiler.snapshotFor('web')).clusters, {});
    registry.connect({ id: 'w1', service: 'web', address: '127.0.0.1:1', protocol: 'http', labels: {} });
    await store.writeResources(parse([service('api')]));
    await compiler.bump();
    const snap = await compiler.snapshotFor('web');
    assert.deepEqual(Object.keys(snap.clusters), ['api', 'web']);
    assert.equal(snap.clusters.web!.endpoints[0]!.id, 'w1');
    await registry.close();
  });
});

describe('SnapshotCompiler shared compilation and wire form', () => {
  it('serialises the same snapshot snapshotFor returns, with the per-service policies, sharing the head bytes', async () => {
    const store = await openStore();
    const registry = new Registry(store);
    await store.writeResources(parse([service('api'), service('web'), authzPolicy('web-authz', 'web'), authzPolicy('api-authz', 'api', 'DENY'),
      httpRoute('web-route', 'web', [{ name: 'web', weight: 90 }, { name: 'api', weight: 10 }])]));
    registry.connect({ id: 'w1', service: 'web', address: '127.0.0.1:1', protocol: 'http', labels: { version: 'v1' } });
    const compiler = new SnapshotCompiler(store, registry, 'td');
    await compiler.init();
    const web = await compiler.wireFor('web');
    const api = await compiler.wireFor('api');
    assert.equal(web.chunks[0], api.chunks[0], 'one head Buffer per version, shared by every service');
    assert.equal(web.bytes, web.chunks.reduce((a, c) => a + c.length, 0));
    const text = Buffer.concat(web.chunks).toString('utf8');
    assert.ok(text.endsWith('}\n') && text.indexOf('\n') === text.length - 1, 'exactly one NDJSON line');
    const msg = ServerMessage.parse(JSON.parse(text));
    assert.equal(msg.type, 'snapshot');
    const snap = Snapshot.parse((msg as { snapshot: unknown }).snapshot);
    assert.deepEqual(snap, Snapshot.parse(await compiler.snapshotFor('web')));
    assert.deepEqual(snap.authorizationPolicies.map((p) => p.metadata.name), ['web-authz']);
    const apiSnap = Snapshot.parse(JSON.parse(Buffer.concat(api.chunks).toString('utf8')).snapshot);
    assert.deepEqual(apiSnap.authorizationPolicies.map((p) => p.metadata.name), ['api-authz']);
    assert.equal(await compiler.wireFor('web'), web, 'cached for the version');
    await compiler.bump();
    assert.notEqual(await compiler.wireFor('web'), web, 'a new version compiles again');
    await registry.close();
  });

  it('reserves versions in blocks: the store is written once per block, and a restart starts above the block', async () => {
    const store = await openStore();
    const registry = new Registry(store);
    const first = new SnapshotCompiler(store, registry, 'td');
    const v1 = Number(await first.init());
    const ceiling = await store.getCounter(VERSION_RESERVED);
    assert.equal(ceiling, v1 + VERSION_BLOCK - 1);
    for (let i = 0; i < 5; i++) await first.bump();
    assert.equal(await store.getCounter(VERSION_RESERVED), ceiling, 'no write inside the block');
    const restarted = new SnapshotCompiler(store, registry, 'td');
    assert.ok(Number(await restarted.init()) > ceiling);
  });

  it('gives two compilers sharing a store blocks of their own, and moves above a version a proxy brings', async () => {
    const store = await openStore();
    const registry = new Registry(store);
    const a = new SnapshotCompiler(store, registry, 'td');
    const b = new SnapshotCompiler(store, registry, 'td');
    const [va, vb] = [Number(await a.init()), Number(await b.init())];
    assert.equal(Math.abs(va - vb), VERSION_BLOCK, 'disjoint blocks');
    const seenA = new Set<number>([va]);
    for (let i = 0; i < 20; i++) seenA.add(Number(await a.bump()));
    for (let i = 0; i < 20; i++) assert.ok(!seenA.has(Number(await b.bump())), 'b never hands out a version of a');
    const low = va < vb ? a : b;
    const high = va < vb ? b : a;
    assert.equal(await low.advancePast(Number(high.currentVersion)), true);
    assert.ok(Number(low.currentVersion) > Number(high.currentVersion));
    assert.equal(await low.advancePast(1), false, 'an older version changes nothing');
    assert.equal(await low.advancePast(10 ** 12), false, 'a version nobody reserved is ignored');
  });

  it('starts above the version ceiling of earlier data dirs', async () => {
    const store = await openStore();
    await store.putBlob(VERSION_CEILING, '4999');
    const compiler = new SnapshotCompiler(store, new Registry(store), 'td');
    assert.equal(await compiler.init(), '5000');
  });

  it('starts above the per-version counter of earlier data dirs', async () => {
    const store = await openStore();
    for (let i = 0; i < 7; i++) await store.increment(VERSION_COUNTER);
    const compiler = new SnapshotCompiler(store, new Registry(store), 'td');
    assert.equal(await compiler.init(), '8');
  });

  it('compiles 1,000 services and 10,000 instances in one pass', () => {
    const resources = parse(Array.from({ length: 1000 }, (_, i) => service(`s${i}`)));
    const instances = Array.from({ length: 10_000 }, (_, i) => instance(`i${i}`, `s${i % 1000}`, `10.0.${i >> 8 & 255}.${i & 255}:1`));
    const snap = compileSnapshot({ service: 's1', version: '1', trustDomain: 'td', resources, instances });
    assert.equal(Object.keys(snap.clusters).length, 1000);
    assert.equal(snap.clusters.s7!.endpoints.length, 10);
    assert.deepEqual(snap.clusters.s7!.endpoints.map((e) => e.id), [...snap.clusters.s7!.endpoints.map((e) => e.id)].sort());
  });

  it('reuses an unchanged cluster across versions (object and bytes), and rebuilds the one whose inputs changed', async () => {
    const store = await openStore();
    const registry = new Registry(store);
    await store.writeResources(parse([service('api'), service('web'), trafficPolicy('web-lb', 'web', { loadBalancer: { type: 'Random' } })]));
    registry.connect({ id: 'a1', service: 'api', address: '127.0.0.1:1', protocol: 'http', labels: {} });
    registry.connect({ id: 'w1', service: 'web', address: '127.0.0.1:2', protocol: 'http', labels: {} });
    const compiler = new SnapshotCompiler(store, registry, 'td');
    await compiler.init();
    const v1 = await compiler.snapshotFor('web');
    registry.connect({ id: 'w2', service: 'web', address: '127.0.0.1:3', protocol: 'http', labels: {} });
    await compiler.bump();
    const v2 = await compiler.snapshotFor('web');
    assert.equal(v2.clusters.api, v1.clusters.api, 'api did not change: same object');
    assert.notEqual(v2.clusters.web, v1.clusters.web);
    assert.deepEqual(v2.clusters.web!.endpoints.map((e) => e.id), ['w1', 'w2']);
    await store.writeResources(parse([trafficPolicy('web-lb', 'web', { loadBalancer: { type: 'EWMA' } })]));
    await compiler.bump();
    const v3 = await compiler.snapshotFor('web');
    assert.equal(v3.clusters.web!.trafficPolicy?.loadBalancer?.type, 'EWMA', 'a policy change rebuilds the cluster');
    registry.disconnect('a1');
    await compiler.bump();
    assert.equal((await compiler.snapshotFor('web')).clusters.api!.endpoints[0]!.draining, true, 'a state change rebuilds the cluster');
    const d = JSON.parse(Buffer.concat((await compiler.wireFor('web', v3.version)).chunks).toString('utf8'));
    assert.deepEqual(Object.keys(d.delta.clusters), ['api'], 'the delta has only the rebuilt cluster');
    await registry.close();
  });
});
