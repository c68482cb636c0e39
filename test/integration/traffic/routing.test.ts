/**
 * HTTPRoute matching and weighted splits end to end, mirroring, and TCPRoute splits.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { startHttpApp, startTcpEcho, tallyAnswers, type TestApp } from '../../helpers/apps.js';
import { applyAndWait, client, eventually, startMeshProxy, waitForEndpoints, type ControlPlaneRef, type MeshProxy } from '../../helpers/mesh.js';

const API = 'trellis.dev/v1alpha1';

function canary(v1: number, v2: number, mirror = false) {
  return {
    apiVersion: API, kind: 'HTTPRoute', metadata: { name: 'catalog-routes' },
    spec: {
      parentRefs: [{ name: 'catalog' }],
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-user', value: 'beta' }] }], backendRefs: [{ name: 'catalog', subset: { version: 'v2' } }] },
        { matches: [{ path: { type: 'Exact', value: '/api/exact' } }], backendRefs: [{ name: 'catalog', subset: { version: 'v1' } }] },
        { matches: [{ path: { type: 'RegularExpression', value: '/items/[0-9]+' }, method: 'GET' }], backendRefs: [{ name: 'catalog', subset: { version: 'v2' } }] },
        { matches: [{ path: { type: 'PathPrefix', value: '/q' }, queryParams: [{ name: 'variant', value: 'b' }] }], backendRefs: [{ name: 'catalog', subset: { version: 'v2' } }] },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
          backendRefs: [{ name: 'catalog', subset: { version: 'v1' }, weight: v1 }, { name: 'catalog', subset: { version: 'v2' }, weight: v2 }],
          ...(mirror ? { filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'shadow' }, percent: 100 } }] } : {}),
        },
      ],
    },
  };
}

describe('HTTP routing and splits', () => {
  const apps: TestApp[] = [];
  let cp: ControlPlaneRef;
  let caller: MeshProxy;
  let shadowApp: TestApp;

  before(async () => {
    cp = await startControlPlane();
    const v1 = await startHttpApp('v1');
    const v2 = await startHttpApp('v2');
    shadowApp = await startHttpApp('shadow');
    const c = await startHttpApp('caller');
    apps.push(v1, v2, shadowApp, c);
    await startMeshProxy(cp, { service: 'catalog', app: v1.address, labels: { version: 'v1' } });
    await startMeshProxy(cp, { service: 'catalog', app: v2.address, labels: { version: 'v2' } });
    await startMeshProxy(cp, { service: 'shadow', app: shadowApp.address });
    caller = await startMeshProxy(cp, { service: 'caller', app: c.address, outbound: ['catalog'] });
    await waitForEndpoints(caller, 'catalog', 2);
    await applyAndWait(cp, caller, [canary(90, 10)]);
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('splits 90/10 within ±3 points over 2,000 requests', async () => {
    const { apps: seen, statuses } = await tallyAnswers(caller.outbound.catalog!, 2000);
    assert.equal(statuses[200], 2000);
    const share = (seen.v2 ?? 0) / 2000;
    assert.ok(Math.abs(share - 0.1) <= 0.03, `v2 share ${share}`);
  });

  it('matches in Gateway API order: header, Exact, regex + method, query, prefix; else 404 NO_ROUTE', async () => {
    assert.deepEqual((await tallyAnswers(caller.outbound.catalog!, 50, { headers: { 'x-user': 'beta' } })).apps, { v2: 50 });
    assert.deepEqual((await tallyAnswers(caller.outbound.catalog!, 20, { path: '/api/exact' })).apps, { v1: 20 });
    assert.deepEqual((await tallyAnswers(caller.outbound.catalog!, 20, { path: '/items/42' })).apps, { v2: 20 });
    assert.deepEqual((await tallyAnswers(caller.outbound.catalog!, 20, { path: '/q/list?variant=b' })).apps, { v2: 20 });
    const none = await tallyAnswers(caller.outbound.catalog!, 5, { path: '/items/abc' });
    assert.deepEqual(none.statuses, { 404: 5 });
  });

  it('moves traffic within a second of a weight change, without a failed request', async () => {
    const address = caller.outbound.catalog!;
    let running = true;
    let failures = 0;
    const background = (async () => {
      for (let i = 0; running && i < 5000; i++) {
        const { statuses } = await tallyAnswers(address, 10, { concurrency: 2 });
        failures += 10 - (statuses[200] ?? 0);
      }
    })();
    const applied = Date.now();
    await client(cp).apply([canary(0, 100)]);
    await eventually(async () => (await tallyAnswers(address, 20, { concurrency: 4 })).apps.v2 === 20, 5000, 'all traffic on v2');
    const took = Date.now() - applied;
    running = false;
    await background;
    assert.ok(took < 1000, `weights took ${took}ms`);
    assert.equal(failures, 0);
  });

  it('mirrors requests to another backend without affecting the primary', async () => {
    await applyAndWait(cp, caller, [canary(100, 0, true)]);
    const before = shadowApp.seen.length;
    const { statuses } = await tallyAnswers(caller.outbound.catalog!, 30, { concurrency: 3 });
    assert.equal(statuses[200], 30);
    await eventually(() => shadowApp.seen.length - before >= 30, 5000, 'the shadow backend to receive the copies');
    // A dead mirror does not fail the primary.
    await shadowApp.close();
    const after = await tallyAnswers(caller.outbound.catalog!, 30, { concurrency: 3 });
    assert.equal(after.statuses[200], 30);
  });
  it('keeps applying config when a route names a deleted service, answering 503 for that route', async () => {
    await client(cp).apply([{ apiVersion: API, kind: 'Service', metadata: { name: 'retired' }, spec: { protocol: 'http' } }]);
    await applyAndWait(cp, caller, [{
      apiVersion: API, kind: 'HTTPRoute', metadata: { name: 'to-retired' },
      spec: { parentRefs: [{ name: 'catalog' }], rules: [{ matches: [{ path: { type: 'Exact', value: '/retired' } }], backendRefs: [{ name: 'retired' }] }] },
    }]);
    await client(cp).delete('Service', 'retired');
    const state = async () => (await (await fetch(`http://${caller.admin}/config`)).json()) as { lastNack: unknown; snapshot: { clusters: Record<string, unknown> } };
    await eventually(async () => (await state()).snapshot.clusters.retired === undefined, 10_000, 'the service to disappear');
    assert.equal((await state()).lastNack, null, 'the config was applied, not refused');
    const { statuses } = await tallyAnswers(caller.outbound.catalog!, 3, { path: '/retired', concurrency: 1 });
    assert.deepEqual(statuses, { 503: 3 });
    assert.equal((await tallyAnswers(caller.outbound.catalog!, 3, { concurrency: 1 })).statuses[200], 3, 'other routes unaffected');
  });
});

describe('TCPRoute splits', () => {
  const apps: TestApp[] = [];
  let cp: ControlPlaneRef;
  let caller: MeshProxy;

  before(async () => {
    cp = await startControlPlane();
    const a = await startTcpEcho('a');
    const b = await startTcpEcho('b');
    const c = await startHttpApp('caller');
    apps.push(a, b, c);
    await startMeshProxy(cp, { service: 'db', app: a.address, protocol: 'tcp', labels: { version: 'a' } });
    await startMeshProxy(cp, { service: 'db', app: b.address, protocol: 'tcp', labels: { version: 'b' } });
    caller = await startMeshProxy(cp, { service: 'caller', app: c.address, outbound: ['db'] });
    await waitForEndpoints(caller, 'db', 2);
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  const route = (a: number, b: number) => ({
    apiVersion: API, kind: 'TCPRoute', metadata: { name: 'db-split' },
    spec: { parentRefs: [{ name: 'db' }], rules: [{ backendRefs: [{ name: 'db', subset: { version: 'a' }, weight: a }, { name: 'db', subset: { version: 'b' }, weight: b }] }] },
  });

  async function connections(n: number): Promise<Record<string, number>> {
    const [host, port] = [caller.outbound.db!.split(':')[0], Number(caller.outbound.db!.split(':')[1])];
    const seen: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const who = await new Promise<string>((resolve, reject) => {
        const s = net.connect(port, host);
        s.once('data', (d) => { s.destroy(); resolve(d.toString().split(':')[0]!); });
        s.on('error', reject);
      });
      seen[who] = (seen[who] ?? 0) + 1;
    }
    return seen;
  }

  it('sends each connection by weight', async () => {
    await applyAndWait(cp, caller, [route(100, 0)]);
    assert.deepEqual(await connections(20), { a: 20 });
    await applyAndWait(cp, caller, [route(0, 100)]);
    assert.deepEqual(await connections(20), { b: 20 });
    await applyAndWait(cp, caller, [route(50, 50)]);
    const mixed = await connections(200);
    assert.ok((mixed.a ?? 0) > 60 && (mixed.b ?? 0) > 60, JSON.stringify(mixed));
  });
});
