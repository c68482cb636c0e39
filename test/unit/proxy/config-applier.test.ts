import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DELTA_BASE_MISMATCH, type Snapshot } from '../../../src/api/schema/snapshot.js';
import { DEFAULT_MESH_CONFIG } from '../../../src/api/schema/resources.js';
import { ConfigApplier } from '../../../src/proxy/runtime/config-applier.js';
import type { ProxyServices } from '../../../src/proxy/runtime/services.js';
import { EndpointRegistry } from '../../../src/proxy/upstream/endpoint-registry.js';
import { ProxyMetrics } from '../../../src/proxy/metrics.js';
import type { Logger } from '../../../src/shared/log.js';

const silent: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silent };

function applier(): ConfigApplier {
  const services = {
    service: 'web', trustDomain: 'td', spiffeId: 'spiffe://td/service/web',
    peers: { retain: () => undefined }, endpoints: new EndpointRegistry(),
    metrics: new ProxyMetrics({ service: 'web', instance: 'w1' }), app: { forward: () => Promise.reject(new Error('no app')) }, log: silent, traces: {},
  } as unknown as ProxyServices;
  return new ConfigApplier({ services, trustDomain: 'td', probeFor: () => async () => true });
}

const cluster = (name: string, ids: string[], lb?: 'RoundRobin' | 'Random') => ({
  name, protocol: 'http' as const,
  endpoints: ids.map((id, i) => ({ id, address: `127.0.0.1:${7000 + i}`, labels: {}, draining: false })),
  ...(lb ? { trafficPolicy: { targetRef: { name }, loadBalancer: { type: lb } } } : {}),
});

function snapshot(version: string): Snapshot {
  return {
    version, trustDomain: 'td', meshConfig: DEFAULT_MESH_CONFIG,
    clusters: { api: cluster('api', ['a1', 'a2']), db: cluster('db', ['d1']), web: cluster('web', ['w1']) },
    httpRoutes: [], tcpRoutes: [], authorizationPolicies: [], jwtAuthentications: [],
  } as Snapshot;
}

describe('ConfigApplier deltas', () => {
  it('merges a delta into a whole snapshot, keeping the runtime of unchanged clusters and rebuilding changed ones', () => {
    const a = applier();
    assert.equal(a.apply(snapshot('5')), '5');
    const before = a.current!;
    const apiRuntime = before.clusters.get('api')!;
    const webRuntime = before.clusters.get('web')!;
    assert.equal(a.applyDelta({
      version: '6', baseVersion: '5', trustDomain: 'td',
      clusters: { api: cluster('api', ['a1', 'a2', 'a3'], 'Random'), cache: cluster('cache', ['c1']) },
      removedClusters: ['db'],
    }), '6');
    const after = a.current!;
    assert.equal(after.version, '6');
    assert.deepEqual(Object.keys(after.snapshot.clusters), ['api', 'cache', 'web'], 'name order, db removed, cache added');
    assert.equal(after.snapshot.clusters.api!.endpoints.length, 3);
    assert.equal(after.snapshot.clusters.api!.trafficPolicy?.loadBalancer?.type, 'Random');
    assert.notEqual(after.clusters.get('api'), apiRuntime, 'a changed cluster is built anew');
    assert.equal(after.clusters.get('web'), webRuntime, 'an unchanged cluster keeps its runtime (balancer, outlier state)');
    assert.equal(after.clusters.get('api')!.endpoints[0], apiRuntime.endpoints[0], 'endpoint state survives as with a whole snapshot');
    assert.ok(after.outbound('cache'), 'new destinations are routable');
    assert.equal(after.outbound('db'), undefined, 'removed destinations are gone');
    assert.deepEqual(after.snapshot.httpRoutes, [], 'absent sections stay as they were');
  });

  it('adds, replaces and removes HTTPRoutes by name, keeping the objects of the others', () => {
    const a = applier();
    const route = (name: string, parent: string, weight: number) => ({
      apiVersion: 'trellis.dev/v1alpha1', kind: 'HTTPRoute', metadata: { name }, spec: { parentRefs: [{ name: parent }], rules: [{ backendRefs: [{ name: parent, weight }] }] },
    });
    a.apply({ ...snapshot('5'), httpRoutes: [route('a-route', 'api', 1), route('b-route', 'db', 1), route('c-route', 'web', 1)] });
    const [first, , third] = a.current!.snapshot.httpRoutes;
    a.applyDelta({ version: '6', baseVersion: '5', trustDomain: 'td', clusters: {}, removedClusters: [], httpRoutes: [route('b-route', 'db', 7), route('ab-route', 'api', 2)], removedHttpRoutes: ['c-route'] });
    const routes = a.current!.snapshot.httpRoutes;
    assert.deepEqual(routes.map((r) => r.metadata.name), ['a-route', 'ab-route', 'b-route'], 'name order');
    assert.equal(routes[0], first, 'an unchanged route keeps its object');
    assert.equal(routes[2]!.spec.rules[0]!.backendRefs![0]!.weight, 7);
    assert.ok(!routes.includes(third!));
  });

  it('refuses a delta whose base is not the current version, and an invalid one, keeping the current config', () => {
    const a = applier();
    assert.throws(() => a.applyDelta({ version: '2', baseVersion: '1', trustDomain: 'td', clusters: {}, removedClusters: [] }), new RegExp(DELTA_BASE_MISMATCH));
    a.apply(snapshot('5'));
    const current = a.current;
    assert.throws(() => a.applyDelta({ version: '7', baseVersion: '6', trustDomain: 'td', clusters: {}, removedClusters: [] }), new RegExp(`Error: ${DELTA_BASE_MISMATCH}`));
    assert.throws(() => a.applyDelta({ version: '6', baseVersion: '5', trustDomain: 'td', clusters: { api: { name: 'api', protocol: 'http', endpoints: [{ id: 'x', address: 'nope' }] } }, removedClusters: [] }), /address/);
    assert.throws(() => a.applyDelta({ version: '6', baseVersion: '5', trustDomain: 'other', clusters: {}, removedClusters: [] }), /trust domain/);
    assert.equal(a.current, current);
    assert.equal(a.lastNack?.version, '6');
  });

  it('does not stop the clusters a failed compile carried over', () => {
    const a = applier();
    a.apply(snapshot('5'));
    const web = a.current!.clusters.get('web')!;
    // A route to a missing subset is fine; a RequestHeaderModifier on x-trellis-* fails the build (→ NACK).
    assert.throws(() => a.applyDelta({
      version: '6', baseVersion: '5', trustDomain: 'td', clusters: {}, removedClusters: [],
      httpRoutes: [{ apiVersion: 'trellis.dev/v1alpha1', kind: 'HTTPRoute', metadata: { name: 'bad' }, spec: { parentRefs: [{ name: 'api' }], rules: [{ filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-trellis-peer', value: 'x' }] } }] }] } }],
    }), /reserved/);
    assert.equal(a.current!.clusters.get('web'), web);
    assert.equal(a.current!.version, '5');
    a.dispose();
  });
});
