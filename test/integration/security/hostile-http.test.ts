/**
 * Hostile HTTP/1.1 at the local listeners: each vector is sent on a raw socket; the proxy must answer
 * 4xx with `Connection: close` (or close) and forward nothing to the backend.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { startHttpApp, type TestApp } from '../../helpers/apps.js';
import { startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

/** Writes raw bytes, returns the status line and headers of the first response ('' when closed without one). */
function raw(address: string, payload: string | Buffer): Promise<{ status: number; head: string }> {
  const [host, port] = [address.split(':')[0], Number(address.split(':')[1])];
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    let data = '';
    const done = () => {
      const head = data.split('\r\n\r\n')[0] ?? '';
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      resolve({ status: m ? Number(m[1]) : 0, head: head.toLowerCase() });
    };
    s.on('connect', () => s.write(payload));
    s.on('data', (d) => { data += d.toString('latin1'); if (data.includes('\r\n\r\n')) { s.destroy(); } });
    s.on('close', done);
    s.on('error', () => {});
    s.setTimeout(5000, () => s.destroy());
  });
}

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

describe('hostile HTTP/1.1 at the outbound listener', () => {
  const apps: TestApp[] = [];
  let caller: MeshProxy;
  let backendApp: TestApp;

  before(async () => {
    const cp = await startControlPlane();
    backendApp = await startHttpApp('backend');
    const c = await startHttpApp('caller');
    apps.push(backendApp, c);
    await startMeshProxy(cp, { service: 'backend', app: backendApp.address });
    caller = await startMeshProxy(cp, { service: 'caller', app: c.address, outbound: ['backend'], httpProxy: true });
    await waitForEndpoints(caller, 'backend', 1);
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  for (const [what, payload, statuses] of VECTORS) {
    it(`refuses ${what}`, async () => {
      const seen = backendApp.seen.length;
      const res = await raw(caller.outbound.backend!, payload);
      assert.ok(statuses.includes(res.status), `${what}: got ${res.status || 'no response'}: ${res.head.slice(0, 200)}`);
      assert.match(res.head, /connection: close/);
      assert.equal(backendApp.seen.length, seen, 'nothing reached the backend');
    });
  }

  it('refuses absolute-form requests to addresses outside the mesh on the HTTP proxy', async () => {
    const res = await raw(caller.httpProxy!, 'GET http://10.0.0.1/ HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n');
    assert.equal(res.status, 404);
    assert.match(res.head, /x-trellis-error: no_route/);
  });

  it('never honours Upgrade: h2c and strips hop-by-hop headers', async () => {
    const seen = backendApp.seen.length;
    const res = await raw(caller.outbound.backend!, 'GET /h2c HTTP/1.1\r\nHost: backend\r\nConnection: Upgrade, HTTP2-Settings, X-Secret\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\r\n');
    assert.notEqual(res.status, 101);
    if (backendApp.seen.length > seen) {
      const headers = backendApp.seen.at(-1)!.headers;
      for (const h of ['upgrade', 'http2-settings', 'x-secret', 'keep-alive']) assert.equal(headers[h], undefined, `${h} stripped`);
    }
  });
});
