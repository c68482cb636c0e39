/**
 * The core mesh path end to end with real processes: control plane, proxies, HTTP apps.
 * Discovery, load balancing, identity headers, error codes, draining and killed instances.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { eventually, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

describe('mesh traffic (HTTP/1.1)', () => {
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  const apps: TestApp[] = [];
  let frontend: MeshProxy;
  const backends: MeshProxy[] = [];

  before(async () => {
    cp = await startControlPlane();
    for (const name of ['b1', 'b2']) {
      const app = await startHttpApp(name);
      apps.push(app);
      backends.push(await startMeshProxy(cp, { service: 'backend', app: app.address, labels: { version: 'v1' } }));
    }
    const feApp = await startHttpApp('frontend');
    apps.push(feApp);
    frontend = await startMeshProxy(cp, { service: 'frontend', app: feApp.address, outbound: ['backend'], httpProxy: true });
    await waitForEndpoints(frontend, 'backend', 2);
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('balances round-robin over the instances and tells the app who called', async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const res = await httpGet(frontend.outbound.backend!, `/hello?i=${i}`, { 'x-trellis-peer': 'spiffe://evil/service/admin' });
      assert.equal(res.status, 200);
      const body = res.json();
      seen.set(body.app, (seen.get(body.app) ?? 0) + 1);
      assert.equal(body.headers['x-trellis-peer'], 'spiffe://trellis.local/service/frontend', 'identity comes from the certificate, not the client header');
      assert.match(body.headers['x-request-id'], /.+/);
      assert.match(body.headers['traceparent'], /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    }
    assert.equal(seen.get('b1'), 10);
    assert.equal(seen.get('b2'), 10);
    // Keep-alive between the proxies: 20 requests one after another, one HTTP/1.1 mTLS connection per instance.
    const metrics = await (await fetch(`http://${frontend.admin}/metrics`)).text();
    const opened = metrics.match(/^trellis_peer_connections_total\{[^}]*destination="backend",protocol="http\/1\.1"[^}]*\} (\d+)$/m);
    assert.equal(Number(opened?.[1]), 2, 'one connection to each of the two instances');
  });

  it('routes through the HTTP proxy listener by Host header and absolute-form URL', async () => {
    const byHost = await httpGet(frontend.httpProxy!, '/via-host', { host: 'backend' });
    assert.equal(byHost.status, 200);
    assert.match(byHost.json().app, /^b[12]$/);
    const absolute = await httpGet(frontend.httpProxy!, 'http://backend:8080/abs?q=1');
    assert.equal(absolute.status, 200);
    assert.equal(absolute.json().path, '/abs?q=1');
  });

  it('answers unknown services with 404 NO_ROUTE and a JSON reason', async () => {
    const res = await httpGet(frontend.httpProxy!, '/', { host: 'nosuchservice' });
    assert.equal(res.status, 404);
    assert.equal(res.headers['x-trellis-error'], 'NO_ROUTE');
    assert.equal(res.json().error, 'NO_ROUTE');
  });

  it('passes app statuses through unchanged and keeps the request body', async () => {
    const res = await httpGet(frontend.outbound.backend!, '/status/418');
    assert.equal(res.status, 418);
    assert.equal(res.headers['x-trellis-error'], undefined);
    const post = await httpGet(frontend.outbound.backend!, '/echo', { 'content-type': 'text/plain' }, 'POST', 'x'.repeat(100_000));
    assert.equal(post.json().body.length, 100_000);
    // Several MiB each way across the proxies' HTTP/1.1 mTLS hop (back-pressure), byte for byte.
    const big = Array.from({ length: 4 << 20 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
    const bigPost = await httpGet(frontend.outbound.backend!, '/echo', { 'content-type': 'text/plain' }, 'POST', big);
    assert.equal(bigPost.status, 200);
    assert.ok(bigPost.json().body === big, 'the 4 MiB body arrived unchanged');
  });

  it('puts a new instance into rotation within a second', async () => {
    const app = await startHttpApp('b3');
    apps.push(app);
    const third = await startMeshProxy(cp, { service: 'backend', app: app.address });
    backends.push(third);
    // From the moment the new proxy is ready (registered, config received) to b3 answering.
    const started = Date.now();
    let answered = false;
    for (let i = 0; i < 2000 && !answered && Date.now() - started < 5000; i++) {
      answered = (await httpGet(frontend.outbound.backend!, '/')).json().app === 'b3';
    }
    assert.ok(answered, 'b3 answered');
    assert.ok(Date.now() - started < 1000, `in rotation after ${Date.now() - started}ms`);
    await waitForEndpoints(frontend, 'backend', 3);
  });

  it('drains an instance on SIGTERM without failing requests', async () => {
    const leaving = backends.pop()!;
    let failures = 0;
    let running = true;
    const load = (async () => {
      let n = 0;
      while (running && n++ < 2000) {
        const res = await httpGet(frontend.outbound.backend!, '/during-drain');
        if (res.status !== 200) failures++;
      }
    })();
    const code = await leaving.stop('SIGTERM');
    assert.equal(code, 0, 'the proxy exits 0 after draining');
    await waitForEndpoints(frontend, 'backend', 2);
    running = false;
    await load;
    assert.equal(failures, 0);
  });

  it('keeps serving when an instance is killed without goodbye', async () => {
    const victim = backends.pop()!;
    await victim.stop('SIGKILL');
    // The killed instance's app is still up but nobody can reach it through its dead proxy.
    let failures = 0;
    for (let i = 0; i < 30; i++) {
      const res = await httpGet(frontend.outbound.backend!, '/after-kill');
      if (res.status !== 200) failures++;
      else assert.equal(res.json().app, 'b1');
    }
    assert.equal(failures, 0, 'connect failures fail over to the healthy instance');
  });
});
