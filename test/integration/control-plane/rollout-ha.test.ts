/**
 * Canary rollouts with two control planes sharing a real etcd (`--store etcd`): one leads the rollouts
 * (decides and writes the status), the other follows and serves the same status and splits to its proxies,
 * the leader's analysis counts the canary requests reported to the other control plane, promote/abort work on
 * either, and when the leader dies the other takes over and finishes the rollout.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startControlPlane, stopAll, type StartedControlPlane } from '../../helpers/processes.js';
import { startHttpApp, type TestApp } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, tokenFile, waitForConfig, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';
import { startEtcd, type RunningEtcd } from '../../helpers/etcd.js';
import { driveUntil, hasSplit, send } from '../../helpers/rollout-traffic.js';
import type { RolloutStatus } from '../../../src/sdk/client.js';

// Inherited by every process this suite starts: proxies report stats (and control planes share them) every 200 ms.
process.env.TRELLIS_STATS_INTERVAL_MS = '200';

const rollout = {
  apiVersion: 'trellis.dev/v1alpha1', kind: 'Rollout', metadata: { name: 'catalog-rollout' },
  spec: { service: 'catalog', stable: { version: 'v1' }, canary: { version: 'v2' }, steps: [50, 100], interval: '1s', analysis: { minSuccessRate: 99, minRequests: 5 } },
};

describe('canary rollouts with two control planes sharing etcd', () => {
  let etcd: RunningEtcd;
  const apps: TestApp[] = [];
  let prefixes = 0;

  /** A first (it campaigns first, so it leads the rollouts), then B, on a fresh prefix; info logs to tell who leads. */
  const pair = async (): Promise<[StartedControlPlane, StartedControlPlane]> => {
    const args = ['--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', `/trellis-rollout-${process.pid}-${++prefixes}/`];
    const opts = { timeoutMs: 40_000, env: { TRELLIS_LOG_LEVEL: 'info' } };
    const a = await startControlPlane(args, opts);
    await eventually(() => a.stderr().includes('leading the rollouts'), 20_000, 'A to lead the rollouts');
    const b = await startControlPlane(args, opts);
    return [a, b];
  };
  /** A proxy whose token names only `cp`, so it streams from that control plane. */
  const proxyOn = async (cp: StartedControlPlane, opts: { service: string; app: string; labels?: Record<string, string>; outbound?: string[] }): Promise<MeshProxy> =>
    startMeshProxy(cp, { ...opts, tokenPath: await tokenFile(cp, opts.service), extraArgs: ['--control-plane', cp.xds] });
  const app = async (name: string) => { const a = await startHttpApp(name); apps.push(a); return a; };

  before(async () => { etcd = await startEtcd(); });
  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
    await etcd?.stop();
  });

  it('the leader (A) analyses a canary whose proxy streams from B; both serve the same status and splits; promote/abort work through B', async () => {
    const [a, b] = await pair();
    assert.ok(!b.stderr().includes('leading the rollouts'), 'B follows');
    const [v1, v2, web] = [await app('catalog-v1'), await app('catalog-v2'), await app('web')];
    await proxyOn(a, { service: 'catalog', app: v1.address, labels: { version: 'v1' } });
    await proxyOn(b, { service: 'catalog', app: v2.address, labels: { version: 'v2' } });
    const callerA = await proxyOn(a, { service: 'web', app: web.address, outbound: ['catalog'] });
    const callerB = await proxyOn(b, { service: 'web', app: web.address, outbound: ['catalog'] });
    await waitForEndpoints(callerA, 'catalog', 2);
    await waitForEndpoints(callerB, 'catalog', 2);

    const applied = await runCli(['apply', '-f', '-'], { api: b.api, stdin: JSON.stringify(rollout) });
    assert.equal(applied.code, 0, applied.stderr);
    // Traffic through A's caller; status read on B (the follower).
    const { status, seen } = await driveUntil(b, callerA.outbound.catalog!, 'catalog', ['Succeeded', 'RolledBack', 'Aborted']);
    assert.equal(status.phase, 'Succeeded', status.message);
    assert.ok((seen['catalog-v2'] ?? 0) > 0 && (seen['catalog-v1'] ?? 0) > 0, JSON.stringify(seen));
    assert.deepEqual(status.history.map((e) => [e.phase, e.canaryWeight]).filter(([p]) => p !== 'Pending'), [['Progressing', 50], ['Progressing', 100], ['Succeeded', 100]]);
    // Every request the leader counted reached the canary on B: without B's shared stats it would only hold.
    assert.ok(status.lastAnalysis!.requests >= 5, JSON.stringify(status.lastAnalysis));
    assert.deepEqual(await client(a).rolloutStatus('catalog'), status, 'A and B serve one status');

    // Proxies of both control planes get the 100% split and route to the canary.
    await waitForConfig(callerA, hasSplit('catalog', 100), 'canary 100% from A', 20_000);
    await waitForConfig(callerB, hasSplit('catalog', 100), 'canary 100% from B', 20_000);
    assert.deepEqual((await send(callerA.outbound.catalog!, 20)).apps, { 'catalog-v2': 20 });
    assert.deepEqual((await send(callerB.outbound.catalog!, 20)).apps, { 'catalog-v2': 20 });

    // Abort through the follower: the leader runs it, B's API shows it when the call returns, both proxies go to 0%.
    const aborted = await runCli(['rollout', 'abort', 'catalog', '-o', 'json'], { api: b.api });
    assert.equal(aborted.code, 0, aborted.stderr);
    assert.equal((JSON.parse(aborted.stdout) as RolloutStatus).phase, 'Aborted');
    assert.equal((await client(b).rolloutStatus('catalog')).phase, 'Aborted');
    assert.equal((await client(a).rolloutStatus('catalog')).phase, 'Aborted');
    await waitForConfig(callerB, hasSplit('catalog', 0), 'canary 0% from B', 20_000);
    await waitForConfig(callerA, hasSplit('catalog', 0), 'canary 0% from A', 20_000);
    const promoted = await runCli(['rollout', 'promote', 'catalog'], { api: b.api });
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.equal((await client(a).rolloutStatus('catalog')).phase, 'Succeeded');
    const missing = await runCli(['rollout', 'promote', 'nothing'], { api: b.api });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no Rollout for service nothing/);
  });

  it('when the leader dies mid-rollout, the other control plane takes over from the stored status and finishes it', async () => {
    const [a, b] = await pair();
    const [v1, v2, web] = [await app('catalog-v1'), await app('catalog-v2'), await app('web')];
    // The data plane is on B: killing A does not disturb the traffic.
    await proxyOn(b, { service: 'catalog', app: v1.address, labels: { version: 'v1' } });
    await proxyOn(b, { service: 'catalog', app: v2.address, labels: { version: 'v2' } });
    const caller = await proxyOn(b, { service: 'web', app: web.address, outbound: ['catalog'] });
    await waitForEndpoints(caller, 'catalog', 2);
    await client(a).apply([rollout] as never);
    await eventually(async () => (await client(b).rolloutStatus('catalog')).phase === 'Progressing', 20_000, 'B to see the rollout progressing');
    await waitForConfig(caller, hasSplit('catalog', 50), 'the 50% split, from B', 20_000);

    await a.stop('SIGKILL');
    // A's lease (10 s) ends; B's campaign wins.
    await eventually(() => b.stderr().includes('leading the rollouts'), 40_000, 'B to take the rollouts over');
    const { status } = await driveUntil(b, caller.outbound.catalog!, 'catalog', ['Succeeded', 'RolledBack', 'Aborted']);
    assert.equal(status.phase, 'Succeeded', status.message);
    assert.ok(status.history.some((e) => /after a change of leading control plane/.test(e.reason)), JSON.stringify(status.history));
    await waitForConfig(caller, hasSplit('catalog', 100), 'canary 100% from B', 20_000);
  });
});
