/**
 * Canary rollouts end to end with real processes: a control plane, a stable (version=v1) and a canary
 * (version=v2) instance of a service behind their sidecars, and a caller's sidecar. The control plane's
 * rollout controller shifts the split step by step from the canary's own golden metrics (stats every
 * 200 ms here), and rolls back by itself when the canary fails. `trellis rollout status|abort|promote`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runCli, startControlPlane, startProcess, stopAll } from '../../helpers/processes.js';
import { startHttpApp, type TestApp } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, waitForConfig, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';
import { driveUntil, hasSplit, send } from '../../helpers/rollout-traffic.js';
import { TrellisApiError, type RolloutStatus } from '../../../src/sdk/client.js';

// Inherited by every process this suite starts: proxies report stats every 200 ms.
process.env.TRELLIS_STATS_INTERVAL_MS = '200';

const API = 'trellis.dev/v1alpha1';

/** An app that answers every request 500 (a broken canary). */
async function startFailingApp(name: string): Promise<TestApp> {
  const seen: TestApp['seen'] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => { res.writeHead(500, { 'content-type': 'text/plain', 'x-app': name }); res.end('broken'); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    name, address: `127.0.0.1:${port}`, port, seen,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

function rollout(name: string, service: string, minSuccessRate: number) {
  return {
    apiVersion: API, kind: 'Rollout', metadata: { name },
    spec: {
      service, stable: { version: 'v1' }, canary: { version: 'v2' }, steps: [50, 100], interval: '1s',
      analysis: { minSuccessRate, minRequests: 5 },
    },
  };
}

describe('canary rollouts', () => {
  const apps: TestApp[] = [];
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  let caller: MeshProxy;

  before(async () => {
    cp = await startControlPlane();
    const catalogV1 = await startHttpApp('catalog-v1');
    const catalogV2 = await startHttpApp('catalog-v2');
    const paymentsV1 = await startHttpApp('payments-v1');
    const paymentsV2 = await startFailingApp('payments-v2');
    const web = await startHttpApp('web');
    apps.push(catalogV1, catalogV2, paymentsV1, paymentsV2, web);
    await startMeshProxy(cp, { service: 'catalog', app: catalogV1.address, labels: { version: 'v1' } });
    await startMeshProxy(cp, { service: 'catalog', app: catalogV2.address, labels: { version: 'v2' } });
    await startMeshProxy(cp, { service: 'payments', app: paymentsV1.address, labels: { version: 'v1' } });
    await startMeshProxy(cp, { service: 'payments', app: paymentsV2.address, labels: { version: 'v2' } });
    caller = await startMeshProxy(cp, { service: 'web', app: web.address, outbound: ['catalog', 'payments'] });
    await waitForEndpoints(caller, 'catalog', 2);
    await waitForEndpoints(caller, 'payments', 2);
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('a healthy canary gets traffic step by step and the Rollout ends Succeeded with all traffic on the canary', async () => {
    await client(cp).apply([rollout('catalog-rollout', 'catalog', 99)]);
    const { status, seen } = await driveUntil(cp, caller.outbound.catalog!, 'catalog', ['Succeeded', 'RolledBack', 'Aborted']);
    assert.equal(status.phase, 'Succeeded', status.message);
    assert.equal(status.canaryWeight, 100);
    assert.ok((seen['catalog-v2'] ?? 0) > 0 && (seen['catalog-v1'] ?? 0) > 0, `both versions answered during the rollout: ${JSON.stringify(seen)}`);
    assert.deepEqual(status.history.map((e) => [e.phase, e.canaryWeight]).filter(([p]) => p !== 'Pending'), [['Progressing', 50], ['Progressing', 100], ['Succeeded', 100]]);
    assert.equal(status.lastAnalysis?.result, 'passed');
    assert.ok(status.lastAnalysis!.requests >= 5);

    await waitForConfig(caller, hasSplit('catalog', 100), 'canary 100%', 20_000);
    const after = await send(caller.outbound.catalog!, 40);
    assert.deepEqual(after.apps, { 'catalog-v2': 40 });

    const table = await runCli(['rollout', 'status', 'catalog'], { api: cp.api });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /Phase:\s+Succeeded/);
    assert.match(table.stdout, /canary version=v2 100%/);
    const json = await runCli(['rollout', 'status', '-o', 'json'], { api: cp.api });
    assert.deepEqual((JSON.parse(json.stdout) as RolloutStatus[]).map((s) => [s.service, s.phase]).filter(([s]) => s === 'catalog'), [['catalog', 'Succeeded']]);
  });

  it('a canary answering 500s is rolled back by itself and traffic returns to the stable only', async () => {
    await client(cp).apply([rollout('payments-rollout', 'payments', 90)]);
    const { status, seen } = await driveUntil(cp, caller.outbound.payments!, 'payments', ['Succeeded', 'RolledBack', 'Aborted']);
    assert.equal(status.phase, 'RolledBack', status.message);
    assert.equal(status.canaryWeight, 0);
    assert.equal(status.lastAnalysis?.result, 'failed');
    assert.match(status.lastAnalysis!.reason, /success rate 0\.00% < minSuccessRate 90%/);
    assert.ok((seen['payments-v2'] ?? 0) > 0, 'the canary got traffic before the rollback');

    await waitForConfig(caller, hasSplit('payments', 0), 'canary 0%', 20_000);
    const after = await send(caller.outbound.payments!, 40);
    assert.deepEqual(after.apps, { 'payments-v1': 40 });
    assert.deepEqual(after.statuses, { 200: 40 });
  });

  it('trellis rollout abort and promote move the split; unknown services are refused', async () => {
    const aborted = await runCli(['rollout', 'abort', 'catalog', '-o', 'json'], { api: cp.api });
    assert.equal(aborted.code, 0, aborted.stderr);
    assert.equal((JSON.parse(aborted.stdout) as RolloutStatus).phase, 'Aborted');
    await waitForConfig(caller, hasSplit('catalog', 0), 'canary 0% after abort', 20_000);
    assert.deepEqual((await send(caller.outbound.catalog!, 20)).apps, { 'catalog-v1': 20 });

    const promoted = await runCli(['rollout', 'promote', 'catalog'], { api: cp.api });
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.match(promoted.stdout, /Phase:\s+Succeeded/);
    await waitForConfig(caller, hasSplit('catalog', 100), 'canary 100% after promote', 20_000);
    const explained = await runCli(['route', 'explain', '--from', 'web', '--to', 'catalog', 'GET', '/items', '-o', 'json'], { api: cp.api });
    assert.equal(explained.code, 0, explained.stderr);
    assert.deepEqual((JSON.parse(explained.stdout) as { backends: Array<{ subset?: Record<string, string>; percent: number }> }).backends
      .map((b) => [b.subset?.version, b.percent]), [['v1', 0], ['v2', 100]], 'route explain shows the split the proxies hold');
    const described = await runCli(['describe', 'service', 'catalog'], { api: cp.api });
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /Rollout\/catalog-rollout .*\n\s+status: Succeeded, step 2\/2, canary 100%/);

    const metrics = await client(cp).metrics();
    assert.match(metrics, /trellis_cp_rollout_canary_weight\{rollout="catalog-rollout",service="catalog"\} 100/);
    assert.match(metrics, /trellis_cp_rollout_canary_weight\{rollout="payments-rollout",service="payments"\} 0/);
    assert.match(metrics, /trellis_cp_rollout_phase\{rollout="payments-rollout",service="payments",phase="RolledBack"\} 1/);

    const ghost = await runCli(['rollout', 'status', 'ghost'], { api: cp.api });
    assert.equal(ghost.code, 1);
    assert.match(ghost.stderr, /no Rollout for service ghost/);
    await assert.rejects(client(cp).promoteRollout('ghost'), (err: unknown) => err instanceof TrellisApiError && err.status === 404);
    const doc = await client(cp).openApi() as { paths: Record<string, unknown> };
    assert.ok(doc.paths['/api/v1/rollouts/{service}/promote'] && doc.paths['/api/v1/rollouts/{service}/abort'] && doc.paths['/api/v1/rollouts/{service}']);
  });
});

describe('a rollout across a control-plane restart', () => {
  const apps: TestApp[] = [];
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  let caller: MeshProxy;

  before(async () => {
    cp = await startControlPlane();
    const v1 = await startHttpApp('shop-v1');
    const v2 = await startHttpApp('shop-v2');
    const web = await startHttpApp('web');
    apps.push(v1, v2, web);
    await startMeshProxy(cp, { service: 'shop', app: v1.address, labels: { version: 'v1' } });
    await startMeshProxy(cp, { service: 'shop', app: v2.address, labels: { version: 'v2' } });
    caller = await startMeshProxy(cp, { service: 'web', app: web.address, outbound: ['shop'] });
    await waitForEndpoints(caller, 'shop', 2);
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('resumes at its step with its split (not from the start), and keeps working', async () => {
    await client(cp).apply([{
      apiVersion: API, kind: 'Rollout', metadata: { name: 'shop-rollout' },
      spec: { service: 'shop', stable: { version: 'v1' }, canary: { version: 'v2' }, steps: [25, 50, 100], interval: '1h' },
    }]);
    const first = await eventually(async () => {
      const s = await client(cp).rolloutStatus('shop');
      return s.phase === 'Progressing' ? s : undefined;
    }, 20_000, 'the rollout to start') as RolloutStatus;
    await waitForConfig(caller, hasSplit('shop', 25), 'the 25% step', 20_000);

    const versionOf = async () => ((await (await fetch(`http://${caller.admin}/config`)).json()) as { version: string; controlPlaneConnected: boolean });
    const before = Number((await versionOf()).version);
    assert.equal(await cp.stop('SIGTERM'), 0);
    await eventually(async () => !(await versionOf()).controlPlaneConnected, 10_000, 'the proxy to notice the outage');
    const restarted = await startProcess(['control-plane', '--data-dir', cp.dataDir, '--api', cp.api, '--xds', cp.xds], { expect: ['api', 'xds'] });
    assert.equal(restarted.listening.xds, cp.xds);

    const resumed = await client(cp).rolloutStatus('shop');
    assert.equal(resumed.phase, 'Progressing');
    assert.equal(resumed.step, 0);
    assert.equal(resumed.canaryWeight, 25);
    assert.equal(resumed.startedAt, first.startedAt, 'the same rollout, not a new one');
    assert.match(resumed.history.at(-1)!.reason, /resumed at step 0 \(25%\) after a control-plane restart/);
    await waitForConfig(caller, (snap) => Number(snap.version) > before && hasSplit('shop', 25)(snap), 'the split from the restarted control plane', 20_000);

    const promoted = await client(cp).promoteRollout('shop');
    assert.equal(promoted.phase, 'Succeeded');
    await waitForConfig(caller, hasSplit('shop', 100), 'canary 100% after promote', 20_000);
    assert.deepEqual((await send(caller.outbound.shop!, 20)).apps, { 'shop-v2': 20 });
  });
});
