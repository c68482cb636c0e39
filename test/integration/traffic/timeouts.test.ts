/**
 * Timeouts end to end with real processes: HTTPRoute timeouts.request and backendRequest, the
 * TrafficPolicy-level request timeout, and deadline propagation (the next hop stops waiting for its
 * app at the caller's deadline even when the caller cannot cancel).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

const API = 'trellis.dev/v1alpha1';

/** /slow?ms=N&id=X answers after N ms; records when each id arrived and when its request was abandoned. */
async function startSlowApp(): Promise<{ address: string; arrived: Map<string, number>; aborted: Map<string, number>; close(): Promise<void> }> {
  const arrived = new Map<string, number>();
  const aborted = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const id = url.searchParams.get('id') ?? '';
    arrived.set(id, performance.now());
    const timer = setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id }));
    }, Number(url.searchParams.get('ms') ?? 0));
    res.on('close', () => {
      if (!res.writableFinished) { clearTimeout(timer); aborted.set(id, performance.now()); }
    });
    req.resume();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`, arrived, aborted,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

describe('timeouts and deadlines', () => {
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  let app: Awaited<ReturnType<typeof startSlowApp>>;
  let backend: MeshProxy;
  let frontend: MeshProxy;
  let seq = 0;

  const call = async (query: string) => {
    const id = `r${++seq}`;
    const started = performance.now();
    const res = await httpGet(frontend.outbound.backend!, `/slow?${query}&id=${id}`);
    return { ...res, id, elapsed: performance.now() - started };
  };

  before(async () => {
    cp = await startControlPlane();
    app = await startSlowApp();
    backend = await startMeshProxy(cp, { service: 'backend', app: app.address });
    frontend = await startMeshProxy(cp, { service: 'frontend', app: app.address, outbound: ['backend'] });
    await waitForEndpoints(frontend, 'backend', 1);
    const q = (value: string) => [{ path: { type: 'PathPrefix', value: '/slow' }, queryParams: [{ name: 't', value }] }];
    await client(cp).apply([
      { apiVersion: API, kind: 'TrafficPolicy', metadata: { name: 'backend-timeouts' }, spec: { targetRef: { name: 'backend' }, timeouts: { request: '400ms' } } },
      { apiVersion: API, kind: 'HTTPRoute', metadata: { name: 'backend-timeouts', annotations: { rev: '1' } }, spec: {
        parentRefs: [{ name: 'backend' }],
        rules: [
          { matches: q('rule'), timeouts: { request: '200ms' } },
          { matches: q('try'), timeouts: { request: '2s', backendRequest: '200ms' } },
          { matches: q('deadline'), timeouts: { request: '800ms' } },
          { matches: [{ path: { type: 'PathPrefix', value: '/' } }] },
        ],
      } },
    ]);
    await eventually(async () => {
      const cfg = await (await fetch(`http://${frontend.admin}/config`)).json() as {
        snapshot?: { httpRoutes: Array<{ metadata: { name: string } }>; clusters: Record<string, { trafficPolicy?: unknown }> };
      };
      return cfg.snapshot?.httpRoutes.some((r) => r.metadata.name === 'backend-timeouts') && cfg.snapshot.clusters.backend?.trafficPolicy;
    }, 10_000, 'the timeout config at the frontend proxy');
    // Connections up before the first timed request: on a loaded machine a first mTLS handshake can
    // outlast a 200 ms timeout, and a request cancelled while it waits for its connection never
    // reaches the app (nothing there to abandon).
    assert.equal((await call('ms=0')).status, 200);
  });

  after(async () => {
    await stopAll();
    await app.close();
  });

  it('timeouts.request answers 504 UPSTREAM_TIMEOUT and abandons the upstream request', async () => {
    const res = await call('t=rule&ms=3000');
    assert.equal(res.status, 504);
    assert.equal(res.headers['x-trellis-error'], 'UPSTREAM_TIMEOUT');
    assert.equal(res.json().error, 'UPSTREAM_TIMEOUT');
    assert.ok(res.elapsed >= 190 && res.elapsed < 1500, `answered after ${res.elapsed.toFixed(0)}ms`);
    await eventually(() => app.aborted.has(res.id), 2000, 'the app request to be cancelled');
    const fast = await call('t=rule&ms=0');
    assert.equal(fast.status, 200, 'a fast request on the same rule is fine');
  });

  it('timeouts.backendRequest bounds one attempt', async () => {
    const res = await call('t=try&ms=3000');
    assert.equal(res.status, 504);
    assert.equal(res.headers['x-trellis-error'], 'UPSTREAM_TIMEOUT');
    assert.ok(res.elapsed < 1500, `answered after ${res.elapsed.toFixed(0)}ms`);
    assert.equal((await call('t=try&ms=0')).status, 200);
  });

  it('TrafficPolicy.timeouts.request applies when the rule has no timeout', async () => {
    const res = await call('ms=3000');
    assert.equal(res.status, 504);
    assert.equal(res.headers['x-trellis-error'], 'UPSTREAM_TIMEOUT');
    assert.ok(res.elapsed >= 390 && res.elapsed < 2000, `answered after ${res.elapsed.toFixed(0)}ms`);
    assert.equal((await call('ms=50')).status, 200);
  });

  it('the next hop stops waiting for its app at the caller\'s deadline, on its own', async () => {
    const inboundTimeouts = async () => {
      const text = await (await fetch(`http://${backend.admin}/metrics`)).text();
      const m = /trellis_proxy_errors_total\{direction="inbound",code="UPSTREAM_TIMEOUT"[^}]*\} (\d+)/.exec(text);
      return m ? Number(m[1]) : 0;
    };
    const timeoutsBefore = await inboundTimeouts();
    const id = `r${++seq}`;
    const started = performance.now();
    const pending = httpGet(frontend.outbound.backend!, `/slow?t=deadline&ms=5000&id=${id}`);
    await eventually(() => app.arrived.has(id), 2000, 'the request to reach the app');
    // Freeze the calling proxy: its own timer cannot fire and it cannot cancel the stream, so only the
    // backend proxy, holding the propagated x-trellis-deadline, can give up on the app.
    frontend.proc.proc.kill('SIGSTOP');
    let abortedAfter: number;
    try {
      await eventually(() => app.aborted.has(id), 4000, 'the backend proxy to abandon the app request');
      abortedAfter = app.aborted.get(id)! - started;
    } finally {
      frontend.proc.proc.kill('SIGCONT');
    }
    assert.ok(abortedAfter >= 700 && abortedAfter < 2000, `the backend proxy gave up after ${abortedAfter.toFixed(0)}ms (caller deadline 800ms)`);
    assert.equal(await inboundTimeouts(), timeoutsBefore + 1, 'the backend proxy answered UPSTREAM_TIMEOUT itself');
    const res = await pending;
    assert.equal(res.status, 504);
    assert.equal(res.headers['x-trellis-error'], 'UPSTREAM_TIMEOUT');
    assert.equal((await call('t=deadline&ms=0')).status, 200);
  });
});
