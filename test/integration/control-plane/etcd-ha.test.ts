/**
 * `--store etcd`: several control planes share one real etcd (Debian's etcd-server, on loopback) and serve
 * the same mesh; any may fail. Every test uses its own key prefix in the one etcd of this file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { runCli, startControlPlane, stopAll, type StartedControlPlane } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, tokenFile, waitForConfig, waitForEndpoints } from '../../helpers/mesh.js';
import { freePort, startEtcd, type RunningEtcd } from '../../helpers/etcd.js';

const service = (name: string) => ({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name }, spec: { protocol: 'http' } }) as const;

interface ProxyView { instanceId: string; service: string; connected: boolean; connectedElsewhere?: boolean }

describe('control planes sharing etcd', () => {
  let etcd: RunningEtcd;
  const apps: TestApp[] = [];
  let prefixes = 0;

  const replicas = async (n: number, extra: string[] = [], opts: { lastFirst?: boolean } = {}): Promise<StartedControlPlane[]> => {
    const prefix = `/trellis-test-${process.pid}-${++prefixes}/`;
    const args = ['--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix, ...extra];
    if (opts.lastFirst) {
      // The last one starts first (lower version block), then the others.
      const last = await startControlPlane(args, { timeoutMs: 40_000 });
      const rest = await Promise.all(Array.from({ length: n - 1 }, () => startControlPlane(args, { timeoutMs: 40_000 })));
      return [...rest, last];
    }
    // Started at the same time: the first start of a mesh races on the CA and the keys.
    return Promise.all(Array.from({ length: n }, () => startControlPlane(args, { timeoutMs: 40_000 })));
  };
  const status = async (cp: StartedControlPlane) => client(cp).status();
  const proxiesOf = async (cp: StartedControlPlane): Promise<ProxyView[]> => (await client(cp).proxies()).proxies as ProxyView[];

  before(async () => { etcd = await startEtcd(); });
  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
    await etcd?.stop();
  });

  it('two control planes started at once agree on one CA, one admin token and one token key', async () => {
    const [a, b] = await replicas(2);
    const [sa, sb] = [await status(a!), await status(b!)];
    assert.equal(sa.ca.pin, sb.ca.pin, 'one CA root');
    assert.equal(sa.ca.pem, sb.ca.pem);
    assert.notEqual(sa.xdsAddress, sb.xdsAddress);
    const [ta, tb] = [await readFile(`${a!.dataDir}/admin-token`, 'utf8'), await readFile(`${b!.dataDir}/admin-token`, 'utf8')];
    assert.equal(ta, tb, 'one admin token, written to each data dir');
    // Versions come from disjoint blocks: never the same number on two control planes.
    assert.notEqual(sa.version, sb.version);
    await Promise.all([a!.stop(), b!.stop()]);
  });

  it('a resource applied on A is served by B and pushed to a proxy connected to B; a token made on A joins through B', async () => {
    const [a, b] = await replicas(2);
    const backend = await startHttpApp('backend');
    apps.push(backend);
    // Token from A; the proxy is told to use B only.
    const token = await tokenFile(a!, 'backend');
    const proxy = await startMeshProxy(b!, { service: 'backend', app: backend.address, tokenPath: token, extraArgs: ['--control-plane', b!.xds] });
    await eventually(async () => (await proxiesOf(b!)).some((p) => p.service === 'backend' && p.connected), 10_000, 'B to hold the proxy');
    // A sees the instance B registered, connected.
    await eventually(async () => (await proxiesOf(a!)).some((p) => p.service === 'backend' && p.connected), 10_000, 'A to see the proxy connected to B');

    const applied = await runCli(['apply', '-f', '-'], { api: a!.api, stdin: JSON.stringify(service('catalog')) });
    assert.equal(applied.code, 0, applied.stderr);
    const got = await runCli(['get', 'service', 'catalog', '-o', 'json'], { api: b!.api });
    assert.equal(got.code, 0, got.stderr);
    assert.equal((JSON.parse(got.stdout) as { metadata: { name: string } }).metadata.name, 'catalog');
    await waitForConfig(proxy, (s) => 'catalog' in s.clusters, 'the Service applied on A');

    // Deleted on B: gone from A too.
    await client(b!).delete('Service', 'catalog');
    assert.equal((await runCli(['get', 'service', 'catalog'], { api: a!.api })).code, 1);
    await waitForConfig(proxy, (s) => !('catalog' in s.clusters), 'the delete made on B');

    // The token carries both control planes.
    const claims = JSON.parse(Buffer.from((await readFile(token, 'utf8')).split('.')[1]!, 'base64url').toString()) as { cp: string; cps: string[] };
    assert.equal(claims.cp, a!.xds);
    assert.deepEqual([...claims.cps].sort(), [a!.xds, b!.xds].sort());
    await proxy.stop();
    await eventually(async () => !(await proxiesOf(a!)).some((p) => p.service === 'backend'), 10_000, 'the goodbye on B to reach A');
  });

  it('when the control plane of a proxy dies, traffic keeps flowing, the proxy moves to the other one and gets new config', async () => {
    // B started first: its versions are below A's, so only moving above the proxy's version keeps it increasing.
    const [a, b] = await replicas(2, ['--instance-grace', '60s'], { lastFirst: true });
    assert.ok(Number((await status(b!)).version) < Number((await status(a!)).version));
    const backend = await startHttpApp('backend');
    const callerApp = await startHttpApp('caller');
    apps.push(backend, callerApp);
    // Tokens made on A: A first in their list, so the proxies stream from A.
    const backendProxy = await startMeshProxy(a!, { service: 'backend', app: backend.address });
    const caller = await startMeshProxy(a!, { service: 'caller', app: callerApp.address, outbound: ['backend'] });
    await waitForEndpoints(caller, 'backend', 1);
    await eventually(async () => (await proxiesOf(a!)).filter((p) => p.connected).length === 2, 10_000, 'both proxies on A');
    const connectedTo = async () => ((await (await fetch(`http://${caller.admin}/config`)).json()) as { controlPlaneConnected: boolean; version: string });
    assert.equal((await httpGet(caller.outbound.backend!, '/before')).status, 200);
    const versionOnA = Number((await connectedTo()).version);

    await a!.stop('SIGKILL');
    for (let i = 0; i < 20; i++) assert.equal((await httpGet(caller.outbound.backend!, `/during/${i}`)).status, 200);
    // Both proxies reconnect to B (the only one left), and B sees them connected.
    await eventually(async () => {
      const list = await proxiesOf(b!);
      return ['backend', 'caller'].every((s) => list.some((p) => p.service === s && p.connected));
    }, 30_000, 'both proxies to reconnect to B');
    assert.equal((await connectedTo()).controlPlaneConnected, true);
    await eventually(async () => Number((await connectedTo()).version) > versionOnA, 10_000, 'a config version above the one A sent');
    // Not doubled: one instance per proxy.
    assert.equal((await proxiesOf(b!)).length, 2);
    await waitForEndpoints(caller, 'backend', 1);

    // Config applied after the failover reaches the proxy through B.
    await client(b!).apply([service('after-failover')] as never);
    await waitForConfig(caller, (s) => 'after-failover' in s.clusters, 'config applied on B after A died');
    assert.equal((await httpGet(caller.outbound.backend!, '/after')).status, 200);
    await backendProxy.stop();
    await caller.stop();
  });

  it('a proxy told only about A learns the other control planes from A, and moves to B when A dies', async () => {
    const [a, b] = await replicas(2);
    const backend = await startHttpApp('backend');
    apps.push(backend);
    const proxy = await startMeshProxy(a!, { service: 'backend', app: backend.address, extraArgs: ['--control-plane', a!.xds] });
    await eventually(async () => (await proxiesOf(a!)).some((p) => p.service === 'backend' && p.connected), 10_000, 'A to hold the proxy');
    await a!.stop('SIGKILL');
    await eventually(async () => (await proxiesOf(b!)).some((p) => p.service === 'backend' && p.connected), 30_000, 'the proxy to reach B, which it was never told about');
    await client(b!).apply([service('learned')] as never);
    await waitForConfig(proxy, (s) => 'learned' in s.clusters, 'config from B');
    await proxy.stop();
  });

  it('the proxies of a dead control plane stop looking connected once its lease ends, and stay routable for the grace period', async () => {
    const [a, b] = await replicas(2, ['--instance-grace', '60s']);
    const backend = await startHttpApp('backend');
    apps.push(backend);
    const proxy = await startMeshProxy(a!, { service: 'backend', app: backend.address, extraArgs: ['--control-plane', a!.xds] });
    await eventually(async () => (await proxiesOf(b!)).some((p) => p.service === 'backend' && p.connected), 10_000, 'B to see the proxy on A');
    // A dies first, so nobody sees the proxy's stream close: only A's lease (10 s) ending tells B.
    await a!.stop('SIGKILL');
    await proxy.stop('SIGKILL');
    await eventually(async () => {
      const p = (await proxiesOf(b!)).find((x) => x.service === 'backend');
      return p !== undefined && !p.connected;
    }, 30_000, 'B to see the proxy of the dead control plane as disconnected');
    const described = await client(b!).describeService('backend');
    assert.equal(described.instances.length, 1, 'kept (not lost, not doubled) for the grace period');
    assert.equal(described.instances[0]!.draining, false, 'still routable: its proxy most likely still serves');
  });

  it('rides out a brief etcd outage: proxies keep serving, and once etcd is back a change made on A reaches a proxy on B', async () => {
    const [a, b] = await replicas(2);
    const backend = await startHttpApp('backend');
    const callerApp = await startHttpApp('caller');
    apps.push(backend, callerApp);
    await startMeshProxy(b!, { service: 'backend', app: backend.address, extraArgs: ['--control-plane', b!.xds] });
    const caller = await startMeshProxy(b!, { service: 'caller', app: callerApp.address, outbound: ['backend'], extraArgs: ['--control-plane', b!.xds] });
    await waitForEndpoints(caller, 'backend', 1);

    await etcd.kill();
    for (let i = 0; i < 10; i++) assert.equal((await httpGet(caller.outbound.backend!, `/outage/${i}`)).status, 200);
    // A write needs etcd: refused with an error, not hung.
    await assert.rejects(client(a!).apply([service('during-outage')] as never));
    await etcd.restart();

    await eventually(async () => { await client(a!).apply([service('after-outage')] as never); return true; }, 30_000, 'A to write to etcd again');
    await waitForConfig(caller, (s) => 'after-outage' in s.clusters && !('during-outage' in s.clusters), 'the change made on A after the outage', 30_000);
    assert.equal((await httpGet(caller.outbound.backend!, '/after-outage')).status, 200);
    // B's registry writes that etcd refused during the outage are retried: A then sees both proxies on B.
    await eventually(async () => (await proxiesOf(a!)).filter((p) => p.connected && p.connectedElsewhere).length === 2, 30_000, 'A to see both proxies connected on B');
  });

  it('fails with a clear error when etcd is unreachable', async () => {
    const port = await freePort();
    const started = Date.now();
    const res = await runCli(['control-plane', '--store', 'etcd', '--etcd-endpoints', `http://127.0.0.1:${port}`, '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0'], { timeoutMs: 60_000 });
    assert.equal(res.code, 1);
    assert.match(res.stderr, new RegExp(`etcd is unreachable at http://127\\.0\\.0\\.1:${port}`));
    assert.ok(Date.now() - started < 45_000, 'no hang');
  });

  it('refuses a malformed etcd endpoint', async () => {
    const res = await runCli(['control-plane', '--store', 'etcd', '--etcd-endpoints', '127.0.0.1:2379', '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /invalid etcd endpoint "127\.0\.0\.1:2379"/);
  });
});
