/**
 * Incremental config (delta): a proxy that announces the `delta` feature gets the whole snapshot first,
 * then only what changed since the version sent before (clusters, removed clusters, changed sections);
 * a NACK with DELTA_BASE_MISMATCH makes the control plane send the whole snapshot at once; a proxy
 * without the feature keeps getting whole snapshots. The proxy side (ConfigApplier) is unit-tested.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TrellisClient } from '../../../src/sdk/client.js';
import { DELTA_BASE_MISMATCH, Snapshot, SnapshotDelta } from '../../../src/api/schema/snapshot.js';
import { startControlPlane, stopAll, type StartedControlPlane } from '../../helpers/processes.js';
import { enroll, hello, openStream, type ClientCert } from './xds-client.js';

const API = 'trellis.dev/v1alpha1';

describe('xDS deltas', () => {
  let cp: StartedControlPlane;
  let client: TrellisClient;
  let cert: ClientCert & { caPem: string };

  before(async () => {
    cp = await startControlPlane(['--instance-grace', '60s']);
    client = new TrellisClient({ baseUrl: `http://${cp.api}` });
    await client.apply([
      { apiVersion: API, kind: 'Service', metadata: { name: 'web' }, spec: { protocol: 'http' } },
      { apiVersion: API, kind: 'Service', metadata: { name: 'api' }, spec: { protocol: 'http' } },
      { apiVersion: API, kind: 'Service', metadata: { name: 'db' }, spec: { protocol: 'tcp' } },
    ]);
    cert = await enroll(cp.xds, (await client.createToken('web')).token);
  });
  after(stopAll);

  it('sends the whole snapshot, then deltas with only the changed parts, and the whole snapshot after a base mismatch', async () => {
    const s = await openStream(cp.xds, cert);
    s.send({ ...hello('web-d1', 'web', '127.0.0.1:7101'), features: ['delta'] } as never);
    // The first config is whole (possibly before or after its own registration).
    const first = await s.next((m) => m.type === 'snapshot');
    const current = Snapshot.parse(first.snapshot);
    let sentVersion = current.version;
    s.send({ type: 'ack', version: current.version });
    /** The next delta matching pred; every delta on the way must start from the version sent before it. */
    const nextDelta = async (pred: (d: SnapshotDelta) => boolean): Promise<SnapshotDelta> => {
      for (;;) {
        const d = SnapshotDelta.parse((await s.next((m) => m.type === 'delta')).delta);
        assert.equal(d.baseVersion, sentVersion, 'a delta starts from the version sent before');
        assert.ok(Number(d.version) > Number(sentVersion));
        sentVersion = d.version;
        s.send({ type: 'ack', version: d.version });
        if (pred(d)) return d;
      }
    };
    if (current.clusters.web?.endpoints.length !== 1) {
      // Its own registration, if the first snapshot predates it: only that cluster changes.
      const d = await nextDelta((x) => 'web' in x.clusters);
      assert.deepEqual(Object.keys(d.clusters), ['web']);
      assert.equal(d.clusters.web!.endpoints[0]!.id, 'web-d1');
    }

    await client.apply([{ apiVersion: API, kind: 'TrafficPolicy', metadata: { name: 'api-lb' }, spec: { targetRef: { name: 'api' }, loadBalancer: { type: 'LeastRequest' } } }]);
    const d1 = await nextDelta((x) => Object.keys(x.clusters).length > 0);
    assert.deepEqual(Object.keys(d1.clusters), ['api'], 'only the cluster that changed');
    assert.equal(d1.clusters.api!.trafficPolicy?.loadBalancer?.type, 'LeastRequest');
    assert.deepEqual(d1.removedClusters, []);
    assert.equal(d1.httpRoutes, undefined, 'unchanged sections are left out');
    assert.equal(d1.meshConfig, undefined);

    // A route changes a section; a deleted service removes its cluster.
    await client.apply([{ apiVersion: API, kind: 'HTTPRoute', metadata: { name: 'api-route' }, spec: { parentRefs: [{ name: 'api' }], rules: [{ backendRefs: [{ name: 'api' }] }] } }]);
    const d2 = await nextDelta((x) => x.httpRoutes !== undefined);
    assert.deepEqual(Object.keys(d2.clusters), []);
    assert.deepEqual(d2.httpRoutes?.map((r) => r.metadata.name), ['api-route']);
    // Another route: only it travels; deleting one sends its name.
    await client.apply([{ apiVersion: API, kind: 'HTTPRoute', metadata: { name: 'web-route' }, spec: { parentRefs: [{ name: 'web' }], rules: [{ backendRefs: [{ name: 'web' }] }] } }]);
    const d2b = await nextDelta((x) => x.httpRoutes !== undefined);
    assert.deepEqual(d2b.httpRoutes?.map((r) => r.metadata.name), ['web-route'], 'only the changed route');
    await client.delete('HTTPRoute', 'web-route');
    const d2c = await nextDelta((x) => x.removedHttpRoutes !== undefined);
    assert.deepEqual(d2c.removedHttpRoutes, ['web-route']);
    assert.equal(d2c.httpRoutes, undefined);
    await client.delete('Service', 'db');
    const d3 = await nextDelta((x) => x.removedClusters.length > 0);
    assert.deepEqual(d3.removedClusters, ['db']);

    // The proxy could not apply it (not at its base): the whole current snapshot comes at once.
    s.send({ type: 'nack', version: d3.version, error: `${DELTA_BASE_MISMATCH}: delta from version ${d3.baseVersion}, but this proxy is at 1` });
    const whole = Snapshot.parse((await s.next((m) => m.type === 'snapshot')).snapshot);
    assert.equal(whole.version, d3.version);
    assert.equal(whole.clusters.db, undefined);
    assert.equal(whole.clusters.api?.trafficPolicy?.loadBalancer?.type, 'LeastRequest');
    s.send({ type: 'ack', version: whole.version });
    sentVersion = whole.version;
    const state = (await client.proxies()).proxies.find((p) => p.instanceId === 'web-d1');
    assert.equal(state?.lastNack, undefined, 'a base mismatch is not a config NACK');

    // After the resync, deltas start from the whole snapshot's version.
    await client.apply([{ apiVersion: API, kind: 'TrafficPolicy', metadata: { name: 'api-lb' }, spec: { targetRef: { name: 'api' }, loadBalancer: { type: 'Random' } } }]);
    const d4 = await nextDelta((x) => 'api' in x.clusters);
    assert.equal(d4.clusters.api!.trafficPolicy?.loadBalancer?.type, 'Random');
    s.end();
  });

  it('keeps sending whole snapshots to a proxy without the feature', async () => {
    const s = await openStream(cp.xds, cert);
    s.send(hello('web-d2', 'web', '127.0.0.1:7102'));
    const first = await s.next((m) => m.type === 'snapshot');
    s.send({ type: 'ack', version: first.snapshot.version });
    await client.apply([{ apiVersion: API, kind: 'TrafficPolicy', metadata: { name: 'api-lb' }, spec: { targetRef: { name: 'api' }, loadBalancer: { type: 'EWMA' } } }]);
    const next = await s.next((m) => (m.type === 'snapshot' || m.type === 'delta') && m.snapshot?.clusters?.api?.trafficPolicy?.loadBalancer?.type === 'EWMA');
    assert.equal(next.type, 'snapshot');
    assert.ok(s.messages.every((m) => m.type !== 'delta'));
    s.end();
  });
});
