/**
 * Slow clients at the HTTP/1.1 listeners, with short bounds (`--header-timeout 500ms
 * --request-timeout 1s`): a client dribbling its request head is answered 408 and closed; a slow
 * body is cut. And the admin listener refuses a non-loopback address at start.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startProcess, stopAll } from '../../helpers/processes.js';
import { startHttpApp, type TestApp } from '../../helpers/apps.js';
import { startMeshProxy, tokenFile, waitForEndpoints } from '../../helpers/mesh.js';
import { connect, inboundTarget, startControlPlaneWithOwnCa, type Target } from '../../helpers/hostile.js';

/**
 * Sends `head`, then one byte of `dribble` every `everyMs`, until the server closes (or the bytes
 * run out). Resolves on the socket's close event with what was received and when.
 */
async function dribble(target: Target, head: string, dribbleBytes: string, everyMs: number): Promise<{ status: number; head: string; afterMs: number; sent: number }> {
  const s = await connect(target);
  const started = Date.now();
  let data = '';
  let sent = 0;
  s.on('data', (d: Buffer) => { data += d.toString('latin1'); });
  s.on('error', () => {});
  s.write(head);
  const timer = setInterval(() => {
    if (sent < dribbleBytes.length && !s.destroyed && s.writable) s.write(dribbleBytes[sent++]!);
    else clearInterval(timer);
  }, everyMs);
  await new Promise<void>((resolve) => s.once('close', () => resolve()));
  clearInterval(timer);
  const h = data.split('\r\n\r\n')[0] ?? '';
  const m = /^HTTP\/1\.1 (\d{3})/.exec(h);
  return { status: m ? Number(m[1]) : 0, head: h.toLowerCase(), afterMs: Date.now() - started, sent };
}

describe('slow clients and the admin address', () => {
  const apps: TestApp[] = [];
  const targets: Target[] = [];
  let cpRef: { api: string; xds: string };

  before(async () => {
    const { cp, ca } = await startControlPlaneWithOwnCa();
    cpRef = cp;
    const backendApp = await startHttpApp('backend');
    const callerApp = await startHttpApp('caller');
    apps.push(backendApp, callerApp);
    const short = ['--header-timeout', '500ms', '--request-timeout', '1s'];
    const backend = await startMeshProxy(cp, { service: 'backend', app: backendApp.address, extraArgs: short });
    const caller = await startMeshProxy(cp, { service: 'caller', app: callerApp.address, outbound: ['backend'], httpProxy: true, extraArgs: short });
    await waitForEndpoints(caller, 'backend', 1);
    targets.push({ name: 'outbound', address: caller.outbound.backend! }, { name: 'http-proxy', address: caller.httpProxy! });
    targets.push(await inboundTarget('inbound', backend.inbound, ca, 'http/1.1'));
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  for (const name of ['outbound', 'http-proxy', 'inbound']) {
    it(`${name}: a dribbled request head is answered 408 and closed at the header timeout`, { timeout: 15_000 }, async () => {
      const target = targets.find((t) => t.name === name)!;
      // 60 bytes at one per 100 ms would take 6 s; the head must be complete within 500 ms.
      const res = await dribble(target, 'GET / HTTP/1.1\r\nHost: backend\r\nX-Slow: ', 'a'.repeat(60), 100);
      assert.equal(res.status, 408, res.head);
      assert.match(res.head, /connection: close/);
      assert.ok(res.afterMs < 4000, `cut after ${res.afterMs} ms`);
      assert.ok(res.sent < 60, 'cut before the dribble ended');
    });

    it(`${name}: a slow body is cut at the request timeout`, { timeout: 15_000 }, async () => {
      const target = targets.find((t) => t.name === name)!;
      // Declares 60 bytes of body and sends one per 100 ms (6 s); the request must be complete within 1 s.
      const res = await dribble(target, 'POST /slow-body HTTP/1.1\r\nHost: backend\r\nContent-Length: 60\r\n\r\n', 'b'.repeat(60), 100);
      assert.ok(res.sent < 60, `cut before the body ended (${res.sent} bytes sent, ${res.afterMs} ms)`);
      assert.ok(res.afterMs < 5000, `cut after ${res.afterMs} ms`);
      if (res.status !== 0) assert.ok([408, 400, 502, 503, 504].includes(res.status), res.head);
    });
  }

  it('refuses a non-loopback --admin address at start', { timeout: 30_000 }, async () => {
    const token = await tokenFile(cpRef, 'caller');
    const args = ['proxy', '--service', 'caller', '--app', '127.0.0.1:9', '--inbound', '127.0.0.1:0', '--token-file', token, '--admin', '0.0.0.0:0'];
    const proc = await startProcess(args).catch((err: Error) => { throw err; });
    const { code } = await proc.exited;
    assert.notEqual(code, 0);
    assert.match(proc.stderr(), /--admin must be a loopback address \(got 0\.0\.0\.0:0\)/);
  });
});
