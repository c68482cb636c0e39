/**
 * With the control plane down, proxies keep serving on their last good config; when it comes back
 * (same data dir, same addresses) they reconnect and resync.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startControlPlane, startProcess, stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

describe('control plane outage', () => {
  const apps: TestApp[] = [];
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  let caller: MeshProxy;

  before(async () => {
    cp = await startControlPlane();
    const backend = await startHttpApp('backend');
    const callerApp = await startHttpApp('caller');
    apps.push(backend, callerApp);
    await startMeshProxy(cp, { service: 'backend', app: backend.address });
    caller = await startMeshProxy(cp, { service: 'caller', app: callerApp.address, outbound: ['backend'] });
    await waitForEndpoints(caller, 'backend', 1);
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('keeps traffic flowing while the control plane is down, and resyncs when it returns', async () => {
    const versionOf = async () => ((await (await fetch(`http://${caller.admin}/config`)).json()) as { version: string; controlPlaneConnected: boolean });
    assert.equal((await httpGet(caller.outbound.backend!, '/before')).status, 200);

    assert.equal(await cp.stop('SIGTERM'), 0);
    await eventually(async () => !(await versionOf()).controlPlaneConnected, 10_000, 'the proxy to notice the outage');
    for (let i = 0; i < 20; i++) assert.equal((await httpGet(caller.outbound.backend!, `/during/${i}`)).status, 200);

    const restarted = await startProcess(['control-plane', '--data-dir', cp.dataDir, '--api', cp.api, '--xds', cp.xds], { expect: ['api', 'xds'] });
    assert.equal(restarted.listening.xds, cp.xds);
    await eventually(async () => (await versionOf()).controlPlaneConnected, 15_000, 'the proxy to reconnect');
    // A change made after the restart reaches the proxy: resync, not just reconnection.
    const before = (await versionOf()).version;
    await client(cp).apply([{ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'extra' }, spec: { protocol: 'http' } }]);
    await eventually(async () => (await versionOf()).version !== before, 10_000, 'a new config version');
    assert.equal((await httpGet(caller.outbound.backend!, '/after')).status, 200);
  });
});
