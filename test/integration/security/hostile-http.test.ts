/**
 * Hostile HTTP/1.1 at every HTTP/1.1 listener — outbound, http-proxy, and inbound (mTLS with a client
 * certificate forged from the test's own CA, ALPN http/1.1): each vector is sent on a raw socket; the
 * proxy must answer 4xx with `Connection: close` (or close) and forward nothing to the backend.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stopAll } from '../../helpers/processes.js';
import { inboundTarget, rawHttp, startControlPlaneWithOwnCa, type Target } from '../../helpers/hostile.js';
import { startHttpApp, type TestApp } from '../../helpers/apps.js';
import { startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

const VECTORS: Array<[string, string | Buffer, number[]]> = [
  ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: backend\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', [400]],
  ['duplicate Content-Length', 'POST / HTTP/1.1\r\nHost: backend\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd', [400]],
  ['invalid Content-Length', 'POST / HTTP/1.1\r\nHost: backend\r\nContent-Length: 4x\r\n\r\nabcd', [400]],
  ['obfuscated Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n', [400, 501]],
  ['Transfer-Encoding with leading space value list', 'POST / HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n', [400, 501]],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: backend\r\nX-A: a\r\n  folded\r\n\r\n', [400]],
  ['bare LF line endings', 'GET / HTTP/1.1\nHost: backend\n\n', [400]],
  ['bare CR in a header', 'GET / HTTP/1.1\r\nHost: backend\r\nX-A: a\rb\r\n\r\n', [400]],
  ['NUL in a header', Buffer.from('GET / HTTP/1.1\r\nHost: backend\r\nX-A: a\u0000b\r\n\r\n', 'latin1'), [400]],
  ['invalid chunk size', 'POST / HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', [400]],
  ['duplicate Host', 'GET / HTTP/1.1\r\nHost: backend\r\nHost: other\r\n\r\n', [400]],
  ['missing Host', 'GET / HTTP/1.1\r\n\r\n', [400]],
  ['headers over 60 KiB', `GET / HTTP/1.1\r\nHost: backend\r\nX-Big: ${'a'.repeat(62 * 1024)}\r\n\r\n`, [431]],
  ['more than 100 headers', `GET / HTTP/1.1\r\nHost: backend\r\n${Array.from({ length: 101 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\n\r\n`, [431]],
  ['URL over 16 KiB', `GET /${'a'.repeat(17 * 1024)} HTTP/1.1\r\nHost: backend\r\n\r\n`, [414, 431]],
  ['CONNECT to a host outside the mesh', 'CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: 10.0.0.1:443\r\n\r\n', [400, 403, 405]],
];

const LISTENERS = ['outbound', 'http-proxy', 'inbound'] as const;

describe('hostile HTTP/1.1 at every listener', () => {
  const apps: TestApp[] = [];
  let caller: MeshProxy;
  let backendApp: TestApp;
  const targets: Record<string, Target> = {};

  before(async () => {
    const { cp, ca } = await startControlPlaneWithOwnCa();
    backendApp = await startHttpApp('backend');
    const c = await startHttpApp('caller');
    apps.push(backendApp, c);
    const backend = await startMeshProxy(cp, { service: 'backend', app: backendApp.address });
    caller = await startMeshProxy(cp, { service: 'caller', app: c.address, outbound: ['backend'], httpProxy: true });
    await waitForEndpoints(caller, 'backend', 1);
    targets.outbound = { name: 'outbound', address: caller.outbound.backend! };
    targets['http-proxy'] = { name: 'http-proxy', address: caller.httpProxy! };
    targets.inbound = await inboundTarget('inbound', backend.inbound, ca, 'http/1.1');
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('serves a well-formed request on every listener (the vectors below are refused, not the listener)', async () => {
    for (const name of LISTENERS) {
      const res = await rawHttp(targets[name]!, 'GET /ok HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n');
      assert.equal(res.status, 200, `${name}: ${res.head}`);
    }
  });

  for (const listener of LISTENERS) {
    for (const [what, payload, statuses] of VECTORS) {
      it(`${listener}: refuses ${what}`, async () => {
        const seen = backendApp.seen.length;
        const res = await rawHttp(targets[listener]!, payload);
        assert.ok(statuses.includes(res.status), `${what}: got ${res.status || 'no response'}: ${res.head.slice(0, 200)}`);
        assert.match(res.head, /connection: close/);
        // A well-formed request after it, through the same listener and peer session: anything the
        // hostile one had let through would reach the backend first (no sleep needed).
        const sentinel = await rawHttp(targets[listener]!, `GET /sentinel HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n`);
        assert.equal(sentinel.status, 200);
        const reached = backendApp.seen.slice(seen).map((r) => `${r.method} ${r.path}`);
        assert.deepEqual(reached, ['GET /sentinel'], 'nothing but the sentinel reached the backend');
      });
    }

    it(`${listener}: never honours Upgrade: h2c and strips hop-by-hop headers`, async () => {
      const seen = backendApp.seen.length;
      const res = await rawHttp(targets[listener]!, 'GET /h2c HTTP/1.1\r\nHost: backend\r\nConnection: Upgrade, HTTP2-Settings, X-Secret\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\r\n');
      assert.notEqual(res.status, 101);
      if (backendApp.seen.length > seen) {
        const headers = backendApp.seen.at(-1)!.headers;
        for (const h of ['upgrade', 'http2-settings', 'x-secret', 'keep-alive']) assert.equal(headers[h], undefined, `${h} stripped`);
      }
    });
  }

  it('refuses absolute-form requests to addresses outside the mesh on the HTTP proxy', async () => {
    const res = await rawHttp(targets['http-proxy']!, 'GET http://10.0.0.1/ HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n');
    assert.equal(res.status, 404);
    assert.match(res.head, /x-trellis-error: no_route/);
  });
});
