/**
 * Active health checks take an instance whose app is down out of rotation before any request
 * fails, and put it back when it recovers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, waitForConfig, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

type Upstream = { address: string; healthy: boolean; ejected: boolean };

describe('active health checking', () => {
  const apps: TestApp[] = [];
  let caller: MeshProxy;
  let sick: MeshProxy;

  before(async () => {
    const cp = await startControlPlane();
    const a = await startHttpApp('healthy');
    const b = await startHttpApp('sick');
    const c = await startHttpApp('caller');
    apps.push(a, b, c);
    await startMeshProxy(cp, { service: 'backend', app: a.address });
    sick = await startMeshProxy(cp, { service: 'backend', app: b.address });
    caller = await startMeshProxy(cp, { service: 'caller', app: c.address, outbound: ['backend'] });
    await waitForEndpoints(caller, 'backend', 2);
    await client(cp).apply([{
      apiVersion: 'trellis.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'backend-hc' },
      spec: { targetRef: { name: 'backend' }, healthCheck: { http: { path: '/healthz' }, interval: '100ms', timeout: '500ms', unhealthyThreshold: 2, healthyThreshold: 1 } },
    }]);
    await eventually(async () => {
      const cfg = await (await fetch(`http://${caller.admin}/config`)).json() as { snapshot: { clusters: Record<string, { trafficPolicy?: unknown }> } };
      return cfg.snapshot.clusters.backend?.trafficPolicy !== undefined;
    }, 10_000, 'the health-check policy to reach the caller');
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  const upstreams = async () => ((await (await fetch(`http://${caller.admin}/config`)).json()) as { upstreams: Record<string, Upstream[]> }).upstreams.backend!;

  it('marks an instance whose app is down unhealthy, with no request sent to it', async () => {
    await apps[1]!.close();
    await eventually(async () => (await upstreams()).some((u) => u.address === sick.inbound && !u.healthy), 10_000, 'the sick instance to be marked unhealthy');
    for (let i = 0; i < 20; i++) {
      const res = await httpGet(caller.outbound.backend!, '/work');
      assert.equal(res.status, 200);
      assert.equal(res.json().app, 'healthy');
    }
    const sickEntry = (await upstreams()).find((u) => u.address === sick.inbound)!;
    assert.equal(sickEntry.ejected, false, 'taken out by the active check, not by failed requests');
  });
});

describe('passive outlier detection', () => {
  const apps: TestApp[] = [];
  let caller: MeshProxy;

  before(async () => {
    const cp = await startControlPlane();
    const good = await startHttpApp('good');
    const bad = await startHttpApp('bad');
    const c = await startHttpApp('caller');
    apps.push(good, bad, c);
    await startMeshProxy(cp, { service: 'backend', app: good.address });
    await startMeshProxy(cp, { service: 'backend', app: bad.address });
    caller = await startMeshProxy(cp, { service: 'caller', app: c.address, outbound: ['backend'] });
    await waitForEndpoints(caller, 'backend', 2);
    await client(cp).apply([{
      apiVersion: 'trellis.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'backend-outlier' },
      spec: { targetRef: { name: 'backend' }, outlierDetection: { consecutiveGatewayErrors: 2, baseEjectionTime: '30s', maxEjectionPercent: 50 } },
    }]);
    await waitForConfig(caller, (s) => s.clusters.backend?.trafficPolicy?.outlierDetection?.consecutiveGatewayErrors === 2, 'the outlier policy');
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('ejects an instance whose app keeps failing, counts it, and stops sending to it', async () => {
    // The instance's proxy stays up (the control plane still lists it); only its app is gone, so its
    // proxy answers 503 UPSTREAM_CONNECT_FAILED: gateway errors for the caller.
    await apps[1]!.close();
    let failures = 0;
    for (let i = 0; i < 10; i++) if ((await httpGet(caller.outbound.backend!, '/x')).status !== 200) failures++;
    assert.equal(failures, 2, 'exactly consecutiveGatewayErrors failures before the ejection');
    for (let i = 0; i < 20; i++) assert.equal((await httpGet(caller.outbound.backend!, '/y')).status, 200);
    const metrics = await (await fetch(`http://${caller.admin}/metrics`)).text();
    assert.match(metrics, /trellis_outlier_ejections_total\{[^}]*destination="backend"[^}]*\} 1\b/);
    assert.ok((await upstreamsOf(caller)).some((u) => u.ejected), '/config shows the ejection');
  });
});

async function upstreamsOf(proxy: MeshProxy): Promise<Upstream[]> {
  return ((await (await fetch(`http://${proxy.admin}/config`)).json()) as { upstreams: Record<string, Upstream[]> }).upstreams.backend!;
}
