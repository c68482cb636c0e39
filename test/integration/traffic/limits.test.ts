/**
 * Circuit breaking (outbound, at the caller) and rate limiting (inbound, at the destination's proxy)
 * end to end with real processes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

type Config = { snapshot: { clusters: Record<string, { trafficPolicy?: { circuitBreaker?: unknown; rateLimit?: unknown } }> } };
const config = async (p: MeshProxy) => (await (await fetch(`http://${p.admin}/config`)).json()) as Config;

describe('limits (circuitBreaker, rateLimit)', () => {
  const apps: TestApp[] = [];
  let caller: MeshProxy;
  let limitedProxy: MeshProxy;

  before(async () => {
    const cp = await startControlPlane();
    for (const name of ['slow', 'limited', 'caller']) apps.push(await startHttpApp(name));
    await startMeshProxy(cp, { service: 'slow', app: apps[0]!.address });
    limitedProxy = await startMeshProxy(cp, { service: 'limited', app: apps[1]!.address });
    caller = await startMeshProxy(cp, { service: 'caller', app: apps[2]!.address, outbound: ['slow', 'limited'] });
    await waitForEndpoints(caller, 'slow', 1);
    await waitForEndpoints(caller, 'limited', 1);
    await client(cp).apply([
      { apiVersion: 'trellis.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'slow-cb' },
        spec: { targetRef: { name: 'slow' }, circuitBreaker: { maxRequests: 1 } } },
      { apiVersion: 'trellis.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'limited-rl' },
        spec: { targetRef: { name: 'limited' }, rateLimit: { requestsPerSecond: 5, burst: 5 } } },
    ]);
    await eventually(async () => (await config(caller)).snapshot.clusters.slow?.trafficPolicy?.circuitBreaker !== undefined, 10_000, 'the breaker to reach the caller');
    await eventually(async () => (await config(limitedProxy)).snapshot.clusters.limited?.trafficPolicy?.rateLimit !== undefined, 10_000, 'the rate limit to reach the limited proxy');
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('maxRequests: 1 with concurrent slow requests answers some 503 CIRCUIT_OPEN at once', async () => {
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 5 }, async () => {
      const res = await httpGet(caller.outbound.slow!, '/slow?ms=600');
      return { res, ms: Date.now() - started };
    }));
    const open = results.filter((r) => r.res.status === 503);
    const ok = results.filter((r) => r.res.status === 200);
    assert.ok(ok.length >= 1, 'one request got through');
    assert.ok(open.length >= 1, 'some overflowed');
    assert.equal(open.length + ok.length, 5);
    for (const r of open) {
      assert.equal(r.res.headers['x-trellis-error'], 'CIRCUIT_OPEN');
      assert.equal(r.res.json().error, 'CIRCUIT_OPEN');
      assert.ok(r.ms < 400, `answered immediately (${r.ms}ms), not queued behind the slow request`);
    }
    // The slot is released when the response ends: the next request passes.
    const after = await httpGet(caller.outbound.slow!, '/slow?ms=1');
    assert.equal(after.status, 200);
  });

  it('rateLimit 5/s burst 5: the 6th immediate request gets 429 RATE_LIMITED with retry-after', async () => {
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 6 }, () => httpGet(caller.outbound.limited!, '/hello')));
    const elapsed = Date.now() - started;
    const statuses = results.map((r) => r.status).sort();
    const limited = results.filter((r) => r.status === 429);
    assert.ok(results.filter((r) => r.status === 200).length >= 5, `statuses ${statuses} in ${elapsed}ms`);
    assert.equal(limited.length, elapsed < 200 ? 1 : limited.length, `statuses ${statuses}`);
    assert.ok(limited.length >= 1, 'at least one was limited');
    assert.equal(limited[0]!.headers['x-trellis-error'], 'RATE_LIMITED');
    assert.equal(limited[0]!.json().error, 'RATE_LIMITED');
    assert.match(String(limited[0]!.headers['retry-after']), /^[1-9]\d*$/);
  });
});
