/**
 * Retries end to end with real processes: a flaky backend (fails the first try of each x-request-id),
 * a POST that is not retried, a replayed PUT body, and a 100%-failing backend whose load stays
 * within the retry budget.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

/** /flaky answers 503 to the first try of each x-request-id, then 200; /fail always 503. */
async function startFlakyApp(): Promise<{ address: string; hits: Map<string, number>; total: () => number; close(): Promise<void> }> {
  const hits = new Map<string, number>();
  let total = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      total++;
      const id = String(req.headers['x-request-id'] ?? '');
      const n = (hits.get(id) ?? 0) + 1;
      if (hits.size < 100_000) hits.set(id, n);
      const fail = req.url?.startsWith('/fail') || (req.url?.startsWith('/flaky') && n === 1);
      res.writeHead(fail ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ try: n, body: Buffer.concat(chunks).toString('utf8') }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    total: () => total,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

describe('retries (HTTPRoute retry, retry budget)', () => {
  let app: Awaited<ReturnType<typeof startFlakyApp>>;
  let caller: MeshProxy;
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    const cp = await startControlPlane();
    app = await startFlakyApp();
    closers.push(() => app.close());
    await startMeshProxy(cp, { service: 'backend', app: app.address });
    const callerApp = await startFlakyApp();
    closers.push(() => callerApp.close());
    caller = await startMeshProxy(cp, { service: 'caller', app: callerApp.address, outbound: ['backend'] });
    await waitForEndpoints(caller, 'backend', 1);
    await client(cp).apply([{
      apiVersion: 'trellis.dev/v1alpha1', kind: 'HTTPRoute', metadata: { name: 'backend-retry' },
      spec: { parentRefs: [{ name: 'backend' }], rules: [{ retry: { attempts: 3, backoff: '5ms', on: ['5xx'] } }] },
    }]);
    await eventually(async () => {
      const cfg = await (await fetch(`http://${caller.admin}/config`)).json() as { snapshot: { httpRoutes: Array<{ metadata: { name: string } }> } };
      return cfg.snapshot.httpRoutes.some((r) => r.metadata.name === 'backend-retry');
    }, 10_000, 'the retry route to reach the caller');
  });

  after(async () => {
    await stopAll();
    await Promise.all(closers.map((c) => c()));
  });

  it('a GET to a backend that fails once then succeeds gets 200', async () => {
    const res = await httpGet(caller.outbound.backend!, '/flaky', { 'x-request-id': 'get-1' });
    assert.equal(res.status, 200);
    assert.equal(res.json().try, 2);
    assert.equal(app.hits.get('get-1'), 2);
  });

  it('a PUT body is replayed on the retry', async () => {
    const res = await httpGet(caller.outbound.backend!, '/flaky', { 'x-request-id': 'put-1', 'content-type': 'text/plain' }, 'PUT', 'replay me');
    assert.equal(res.status, 200);
    assert.equal(res.json().body, 'replay me');
    assert.equal(app.hits.get('put-1'), 2);
  });

  it('a POST is not retried by default', async () => {
    const res = await httpGet(caller.outbound.backend!, '/flaky', { 'x-request-id': 'post-1', 'content-type': 'text/plain' }, 'POST', 'once');
    assert.equal(res.status, 503);
    assert.equal(app.hits.get('post-1'), 1);
  });

  it('with a backend failing 100%, retries stay within the default budget (20%, 10/s)', async () => {
    const before = app.total();
    const started = Date.now();
    let requests = 0;
    const workers = Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 2000 && Date.now() - started < 2000; i++) {
        const res = await httpGet(caller.outbound.backend!, `/fail?i=${i}`);
        assert.equal(res.status, 503);
        requests++;
      }
    });
    await Promise.all(workers);
    const seconds = Math.ceil((Date.now() - started) / 1000);
    const seen = app.total() - before;
    const retries = seen - requests;
    const bound = requests * 0.2 + 10 * (seconds + 1);
    assert.ok(requests > 50, `enough load (${requests} requests)`);
    assert.ok(retries > 0, 'some retries were sent');
    assert.ok(retries <= bound, `${retries} retries for ${requests} requests in ${seconds}s exceeds the budget (${bound})`);
    // Without a budget, attempts: 3 would have meant 4 tries per request.
    assert.ok(seen < requests * 2, `backend saw ${seen} for ${requests}`);
  });
});
