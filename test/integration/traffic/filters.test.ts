/**
 * HTTPRoute filters end to end with real processes: header modifiers (seen by the app and in the
 * response), fault injection (100% and 50% aborts, fixed delays), and the NACK of a modifier that
 * tries to set a mesh header.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

const API = 'trellis.dev/v1alpha1';

interface ProxyConfig {
  version: string | null;
  lastNack: { version: string; error: string } | null;
  snapshot: { httpRoutes: Array<{ metadata: { name: string; annotations?: Record<string, string> } }> } | null;
}

async function proxyConfig(proxy: MeshProxy): Promise<ProxyConfig> {
  return (await (await fetch(`http://${proxy.admin}/config`)).json()) as ProxyConfig;
}

/** Applies one HTTPRoute (tagged with a revision) and waits until the proxy runs a config that has it. */
async function applyRoute(cp: { api: string; xds: string }, proxy: MeshProxy, name: string, spec: object, rev: string): Promise<void> {
  await client(cp).apply([{ apiVersion: API, kind: 'HTTPRoute', metadata: { name, annotations: { rev } }, spec }]);
  await eventually(async () => (await proxyConfig(proxy)).snapshot?.httpRoutes.some((r) => r.metadata.name === name && r.metadata.annotations?.rev === rev),
    10_000, `route ${name}@${rev} at ${proxy.service}`);
}

describe('HTTPRoute filters', () => {
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  const apps: TestApp[] = [];
  let frontend: MeshProxy;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

  before(async () => {
    cp = await startControlPlane();
    const app = await startHttpApp('b1');
    apps.push(app);
    await startMeshProxy(cp, { service: 'backend', app: app.address });
    const feApp = await startHttpApp('frontend');
    apps.push(feApp);
    frontend = await startMeshProxy(cp, { service: 'frontend', app: feApp.address, outbound: ['backend'] });
    await waitForEndpoints(frontend, 'backend', 1);
    await applyRoute(cp, frontend, 'backend-filters', {
      parentRefs: [{ name: 'backend' }],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/headers' } }],
          filters: [
            { type: 'RequestHeaderModifier', requestHeaderModifier: {
              set: [{ name: 'X-Env', value: 'mesh' }], add: [{ name: 'X-Tag', value: 'added' }], remove: ['X-Drop'],
            } },
            { type: 'ResponseHeaderModifier', responseHeaderModifier: {
              set: [{ name: 'X-Served-Via', value: 'trellis' }], remove: ['x-app'],
            } },
          ],
        },
        { matches: [{ path: { type: 'PathPrefix', value: '/abort' } }], filters: [{ type: 'FaultInjection', faultInjection: { abort: { status: 418, percent: 100 } } }] },
        { matches: [{ path: { type: 'PathPrefix', value: '/half' } }], filters: [{ type: 'FaultInjection', faultInjection: { abort: { status: 503, percent: 50 } } }] },
        { matches: [{ path: { type: 'PathPrefix', value: '/delay' } }], filters: [{ type: 'FaultInjection', faultInjection: { delay: { fixed: '300ms', percent: 100 } } }] },
        { matches: [{ path: { type: 'PathPrefix', value: '/' } }] },
      ],
    }, '1');
  });

  after(async () => {
    agent.destroy();
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  /** GET with the keep-alive agent; resolves with status and headers (body drained). */
  function get(path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
    const [host, port] = frontend.outbound.backend!.split(':');
    return new Promise((resolve, reject) => {
      const req = http.get({ host, port: Number(port), path, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      });
      req.on('error', reject);
    });
  }

  it('modifies request headers on the way to the app and response headers on the way back', async () => {
    const res = await httpGet(frontend.outbound.backend!, '/headers', { 'x-env': 'client', 'x-tag': 'client', 'x-drop': 'secret' });
    assert.equal(res.status, 200);
    const seen = res.json().headers as Record<string, string>;
    assert.equal(seen['x-env'], 'mesh', 'set replaces');
    assert.equal(seen['x-tag'], 'client, added', 'add appends');
    assert.equal(seen['x-drop'], undefined, 'remove deletes');
    assert.equal(res.headers['x-served-via'], 'trellis');
    assert.equal(res.headers['x-app'], undefined, 'the app\'s x-app header was removed from the response');
    // Other rules are untouched.
    const plain = await httpGet(frontend.outbound.backend!, '/other', { 'x-drop': 'kept' });
    assert.equal(plain.json().headers['x-drop'], 'kept');
    assert.equal(plain.headers['x-app'], 'b1');
  });

  it('a 100% abort answers the configured status with x-trellis-error FAULT_INJECTED', async () => {
    const before = apps[0]!.seen.length;
    const res = await httpGet(frontend.outbound.backend!, '/abort/x');
    assert.equal(res.status, 418);
    assert.equal(res.headers['x-trellis-error'], 'FAULT_INJECTED');
    assert.equal(res.json().error, 'FAULT_INJECTED');
    assert.equal(apps[0]!.seen.length, before, 'the app never saw the aborted request');
  });

  it('a 50% abort lands within ±3 points over 2,000 requests', async () => {
    const total = 2000;
    let sent = 0;
    let aborted = 0;
    let other = 0;
    const worker = async () => {
      while (sent < total) {
        sent++;
        const res = await get('/half');
        if (res.status === 503 && res.headers['x-trellis-error'] === 'FAULT_INJECTED') aborted++;
        else if (res.status !== 200) other++;
      }
    };
    await Promise.all(Array.from({ length: 20 }, worker));
    assert.equal(other, 0, 'no other failures');
    const percent = (aborted / total) * 100;
    assert.ok(percent >= 47 && percent <= 53, `aborted ${percent.toFixed(1)}%`);
  });

  it('a fixed delay holds the request at least that long', async () => {
    const started = performance.now();
    const res = await httpGet(frontend.outbound.backend!, '/delay');
    const elapsed = performance.now() - started;
    assert.equal(res.status, 200);
    assert.ok(elapsed >= 300, `took ${elapsed.toFixed(0)}ms`);
  });

  it('refuses (NACKs) a modifier that sets a mesh header and keeps the last good config', async () => {
    const good = (await proxyConfig(frontend)).version;
    await client(cp).apply([{ apiVersion: API, kind: 'HTTPRoute', metadata: { name: 'backend-evil' }, spec: {
      parentRefs: [{ name: 'backend' }],
      rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/evil' } }], filters: [
        { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Trellis-Peer', value: 'spiffe://trellis.local/service/admin' }] } },
      ] }],
    } }]);
    const nack = await eventually(async () => (await proxyConfig(frontend)).lastNack, 10_000, 'a NACK');
    assert.ok(nack);
    assert.match(nack.error, /x-trellis-\* headers are reserved/);
    assert.equal((await proxyConfig(frontend)).version, good, 'the last good config stays in use');
    const res = await httpGet(frontend.outbound.backend!, '/headers');
    assert.equal(res.json().headers['x-env'], 'mesh');
    await client(cp).delete('HTTPRoute', 'backend-evil');
  });
});
