/**
 * HTTP/2 abuse at the outbound h2c listener and the inbound h2 (mTLS) listener, with raw frames:
 * streams over SETTINGS_MAX_CONCURRENT_STREAMS are refused without harming the others, a rapid-reset
 * flood and a CONTINUATION flood end in GOAWAY (or a close) with flat memory, and the proxy still
 * serves afterwards. h2load (nghttp2-client) gives an outside sanity load through the h2c listener.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import { stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';
import {
  H2, clientStart, connect, filler, frame, inboundTarget, readFrames, requestBlock, rssBytes, startControlPlaneWithOwnCa, type Target,
} from '../../helpers/hostile.js';

const MAX_STREAMS = 1000; // listeners/outbound.ts h2ServerOptions
const MB = 1024 * 1024;

/** Next turn, or once the socket drains, bounded by the deadline (a server that stops reading must not hang the test). */
function writable(socket: import('node:stream').Duplex, flushed: boolean, deadline: number): Promise<void> {
  if (flushed) return new Promise((r) => setImmediate(r));
  return new Promise((resolve) => {
    const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
    function done() { clearTimeout(timer); socket.off('drain', done); socket.off('close', done); resolve(); }
    socket.once('drain', done);
    socket.once('close', done);
  });
}

/** One normal h2 request through the caller's outbound h2c listener (which reaches the backend's inbound h2). */
async function h2Get(address: string, path: string): Promise<number> {
  const session = http2.connect(`http://${address}`);
  try {
    return await new Promise<number>((resolve, reject) => {
      session.on('error', reject);
      const req = session.request({ ':path': path });
      req.on('response', (h) => { resolve(Number(h[':status'])); req.resume(); });
      req.on('error', reject);
      req.end();
    });
  } finally {
    session.close();
  }
}

describe('HTTP/2 limits at the outbound (h2c) and inbound (h2) listeners', () => {
  const apps: TestApp[] = [];
  let caller: MeshProxy;
  let backend: MeshProxy;
  const targets: Record<string, { target: Target; proxy: () => MeshProxy }> = {};

  before(async () => {
    const { cp, ca } = await startControlPlaneWithOwnCa();
    const backendApp = await startHttpApp('backend');
    const callerApp = await startHttpApp('caller');
    apps.push(backendApp, callerApp);
    backend = await startMeshProxy(cp, { service: 'backend', app: backendApp.address });
    caller = await startMeshProxy(cp, { service: 'caller', app: callerApp.address, outbound: ['backend'] });
    await waitForEndpoints(caller, 'backend', 1);
    targets.outbound = { target: { name: 'outbound', address: caller.outbound.backend! }, proxy: () => caller };
    targets.inbound = { target: await inboundTarget('inbound', backend.inbound, ca, 'h2'), proxy: () => backend };
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  for (const listener of ['outbound', 'inbound'] as const) {
    it(`${listener}: refuses streams over the concurrency limit with REFUSED_STREAM, the others are served`, { timeout: 30_000 }, async (t) => {
      const { target } = targets[listener]!;
      const socket = await connect(target);
      const reader = readFrames(socket);
      const extra = 20;
      const total = MAX_STREAMS + extra;
      // Every HEADERS in one write: the server sees them all before any response can finish
      // (the app answers /slow after 500 ms), so exactly `extra` exceed the limit.
      const frames: Buffer[] = [clientStart()];
      for (let i = 0; i < total; i++) frames.push(frame(H2.HEADERS, H2.END_HEADERS | H2.END_STREAM, 1 + 2 * i, requestBlock('/slow?ms=500', 'backend')));
      socket.write(Buffer.concat(frames));
      const refused = new Set<number>();
      const answered = new Map<number, number>(); // stream → first byte of the response header block (0x88 = :status 200)
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out: ${answered.size} answered, ${refused.size} refused`)), 25_000);
        const check = () => { if (answered.size + refused.size >= total) { clearTimeout(timer); resolve(); } };
        reader.onFrame((f) => {
          if (f.type === H2.RST_STREAM && f.payload.readUInt32BE(0) === H2.REFUSED_STREAM) refused.add(f.streamId);
          if (f.type === H2.HEADERS && f.streamId > 0 && !answered.has(f.streamId)) answered.set(f.streamId, f.payload[0]!);
          check();
        });
        void reader.closed.then(() => { clearTimeout(timer); reject(new Error('connection closed')); });
      });
      socket.destroy();
      assert.equal(refused.size, extra, `${refused.size} refused`);
      assert.equal(answered.size, MAX_STREAMS);
      assert.ok([...answered.values()].every((b) => b === 0x88), 'every admitted stream answered 200');
      assert.equal(reader.goaway(), undefined, 'the session itself was not ended');
    });

    it(`${listener}: a rapid-reset flood ends in GOAWAY with flat memory, and the proxy still serves`, { timeout: 30_000 }, async (t) => {
      const { target, proxy } = targets[listener]!;
      const pid = proxy().proc.proc.pid!;
      const rssBefore = await rssBytes(pid);
      const socket = await connect(target);
      const reader = readFrames(socket);
      socket.write(clientStart());
      const cancel = Buffer.alloc(4);
      cancel.writeUInt32BE(H2.CANCEL);
      const block = requestBlock('/reset', 'backend');
      const deadline = Date.now() + 10_000;
      let sent = 0;
      // Bounded: at most 20,000 streams within 10 s, in batches of 500 HEADERS + RST_STREAM.
      while (sent < 20_000 && Date.now() < deadline && reader.goaway() === undefined && !socket.destroyed) {
        const batch: Buffer[] = [];
        for (let i = 0; i < 500; i++, sent++) {
          const id = 1 + 2 * sent;
          batch.push(frame(H2.HEADERS, H2.END_HEADERS | H2.END_STREAM, id, block), frame(H2.RST_STREAM, 0, id, cancel));
        }
        const flushed = socket.write(Buffer.concat(batch));
        await writable(socket, flushed, deadline);
      }
      if (reader.goaway() === undefined) await Promise.race([reader.closed, new Promise((r) => setTimeout(r, 5000))]);
      socket.destroy();
      const rssAfter = await rssBytes(pid);
      const goaway = reader.goaway();
      t.diagnostic(`${sent} streams opened and reset in ${Date.now() - deadline + 10_000} ms; GOAWAY code ${goaway ?? '-'} (last stream ${reader.lastStreamId() ?? '-'}, i.e. stream #${((reader.lastStreamId() ?? -1) + 1) / 2}); RSS ${(rssBefore / MB).toFixed(1)} → ${(rssAfter / MB).toFixed(1)} MB`);
      assert.ok(goaway !== undefined, `expected a GOAWAY after ${sent} reset streams`);
      assert.ok(rssAfter - rssBefore < 50 * MB, `RSS grew ${((rssAfter - rssBefore) / MB).toFixed(1)} MB`);
      assert.equal(await h2Get(caller.outbound.backend!, '/after-reset'), 200);
      assert.equal((await httpGet(caller.outbound.backend!, '/after-reset-h1')).status, 200);
    });

    it(`${listener}: a CONTINUATION flood ends in GOAWAY or a close, with flat memory`, { timeout: 30_000 }, async (t) => {
      const { target, proxy } = targets[listener]!;
      const pid = proxy().proc.proc.pid!;
      const rssBefore = await rssBytes(pid);
      const socket = await connect(target);
      const reader = readFrames(socket);
      socket.write(Buffer.concat([clientStart(), frame(H2.HEADERS, 0, 1, requestBlock('/cont', 'backend'))]));
      const chunk = frame(H2.CONTINUATION, 0, 1, filler(1000));
      const deadline = Date.now() + 10_000;
      let sent = 0;
      // Bounded: at most 20,000 CONTINUATION frames (~20 MB) within 10 s, none with END_HEADERS.
      while (sent < 20_000 && Date.now() < deadline && reader.goaway() === undefined && !socket.destroyed) {
        const flushed = socket.write(Buffer.concat(Array.from({ length: 100 }, () => chunk)));
        sent += 100;
        await writable(socket, flushed, deadline);
      }
      if (reader.goaway() === undefined) await Promise.race([reader.closed, new Promise((r) => setTimeout(r, 5000))]);
      const closed = socket.destroyed || reader.goaway() !== undefined;
      t.diagnostic(`${sent} CONTINUATION frames sent; GOAWAY code ${reader.goaway() ?? '-'}; closed ${socket.destroyed}; RSS before ${(rssBefore / MB).toFixed(1)} MB`);
      socket.destroy();
      const rssAfter = await rssBytes(pid);
      t.diagnostic(`RSS after ${(rssAfter / MB).toFixed(1)} MB`);
      assert.ok(closed, `expected GOAWAY or a close after ${sent} CONTINUATION frames`);
      assert.ok(sent < 20_000, `the server let ${sent} CONTINUATION frames through`);
      assert.ok(rssAfter - rssBefore < 50 * MB, `RSS grew ${((rssAfter - rssBefore) / MB).toFixed(1)} MB`);
      assert.equal(await h2Get(caller.outbound.backend!, '/after-continuation'), 200);
    });
  }

  it('h2load: 2000 requests through the outbound h2c listener, none failed', { timeout: 60_000 }, async () => {
    const out = await new Promise<{ code: number | null; text: string }>((resolve, reject) => {
      const p = spawn('h2load', ['-n', '2000', '-c', '4', '-m', '10', '-T', '20', `http://${caller.outbound.backend!}/h2load`], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      p.stdout.on('data', (d: Buffer) => { text += d.toString(); });
      p.stderr.on('data', (d: Buffer) => { text += d.toString(); });
      const timer = setTimeout(() => p.kill('SIGKILL'), 50_000);
      p.on('error', reject);
      p.on('close', (code) => { clearTimeout(timer); resolve({ code, text }); });
    });
    assert.equal(out.code, 0, out.text);
    const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out.text);
    assert.ok(m, out.text);
    assert.equal(Number(m[4]), 2000, out.text);
    assert.equal(Number(m[5]), 0, out.text);
    assert.equal(Number(m[6]), 0, out.text);
    assert.match(out.text, /status codes: 2000 2xx/);
  });
});
