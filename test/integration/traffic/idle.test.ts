/**
 * TrafficPolicy.timeouts.idle closes a TCP tunnel after that long without bytes either way, and
 * leaves an active one alone.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { startHttpApp, startTcpEcho, type TestApp } from '../../helpers/apps.js';
import { client, startMeshProxy, waitForConfig, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';
import { httpGet } from '../../helpers/apps.js';
import { enroll, hello, openStream, type ConfigStream } from '../control-plane/xds-client.js';

const IDLE_MS = 400;

describe('idle timeout', () => {
  const apps: TestApp[] = [];
  let caller: MeshProxy;

  before(async () => {
    const cp = await startControlPlane();
    const db = await startTcpEcho('db');
    const c = await startHttpApp('caller');
    apps.push(db, c);
    await startMeshProxy(cp, { service: 'db', app: db.address, protocol: 'tcp' });
    caller = await startMeshProxy(cp, { service: 'caller', app: c.address, outbound: ['db'] });
    await waitForEndpoints(caller, 'db', 1);
    await client(cp).apply([{
      apiVersion: 'trellis.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'db-idle' },
      spec: { targetRef: { name: 'db' }, timeouts: { idle: `${IDLE_MS}ms` } },
    }]);
    await waitForConfig(caller, (s) => s.clusters.db?.trafficPolicy?.timeouts?.idle === `${IDLE_MS}ms`, 'the idle timeout');
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  function open(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect(Number(caller.outbound.db!.split(':')[1]), '127.0.0.1');
      s.once('data', () => resolve(s)); // the echo app greets with "db:"
      s.once('error', reject);
    });
  }

  it('closes a TCP connection idle for longer than timeouts.idle', { timeout: 10_000 }, async () => {
    const socket = await open();
    const quietSince = Date.now();
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    assert.ok(Date.now() - quietSince >= IDLE_MS - 50, `closed after ${Date.now() - quietSince}ms`);
  });

  it('keeps an active TCP connection open past the idle timeout', async () => {
    const socket = await open();
    let closed = false;
    socket.once('close', () => { closed = true; });
    // Traffic every IDLE_MS / 4 for 3 × IDLE_MS: never idle long enough.
    for (let i = 0; i < 12; i++) {
      const echoed = new Promise<void>((resolve) => socket.once('data', () => resolve()));
      socket.write('x');
      await echoed;
      await new Promise((r) => setTimeout(r, IDLE_MS / 4));
    }
    assert.equal(closed, false);
    socket.destroy();
  });
});

describe('idle timeout of pooled proxy-to-proxy HTTP/2 sessions', () => {
  const apps: TestApp[] = [];
  let caller: MeshProxy;
  let relay: net.Server;
  const relayed: net.Socket[] = [];
  let registration: ConfigStream;

  before(async () => {
    const cp = await startControlPlane();
    const b = await startHttpApp('backend');
    const c = await startHttpApp('caller');
    apps.push(b, c);
    const backend = await startMeshProxy(cp, { service: 'backend', app: b.address });
    // A byte relay in front of the backend proxy's inbound: it sees when the caller's session closes.
    const [host, port] = [backend.inbound.split(':')[0]!, Number(backend.inbound.split(':')[1])];
    relay = net.createServer((down) => {
      relayed.push(down);
      const up = net.connect(port, host);
      down.pipe(up).pipe(down);
      down.on('error', () => up.destroy());
      up.on('error', () => down.destroy());
      down.on('close', () => up.destroy());
      up.on('close', () => down.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const { token } = await client(cp).createToken('backend');
    registration = await openStream(cp.xds, await enroll(cp.xds, token));
    registration.send(hello('backend-via-relay', 'backend', `127.0.0.1:${(relay.address() as net.AddressInfo).port}`, { via: 'relay' }));
    caller = await startMeshProxy(cp, { service: 'caller', app: c.address, outbound: ['backend'] });
    await waitForEndpoints(caller, 'backend', 2);
    await client(cp).apply([
      { apiVersion: 'trellis.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'backend-idle' },
        spec: { targetRef: { name: 'backend' }, timeouts: { idle: `${IDLE_MS}ms` } } },
      { apiVersion: 'trellis.dev/v1alpha1', kind: 'HTTPRoute', metadata: { name: 'via-relay' },
        spec: { parentRefs: [{ name: 'backend' }], rules: [{ backendRefs: [{ name: 'backend', subset: { via: 'relay' } }] }] } },
    ]);
    await waitForConfig(caller, (s) => s.clusters.backend?.trafficPolicy?.timeouts?.idle === `${IDLE_MS}ms`
      && s.httpRoutes.some((r: { metadata: { name: string } }) => r.metadata.name === 'via-relay'), 'the idle policy and route');
  });

  after(async () => {
    registration?.destroy();
    await stopAll();
    for (const s of relayed) s.destroy();
    await new Promise<void>((r) => relay.close(() => r()));
    await Promise.all(apps.map((a) => a.close()));
  });

  it('closes the caller\'s session to a peer after timeouts.idle without frames', { timeout: 10_000 }, async () => {
    const res = await httpGet(caller.outbound.backend!, '/through-relay');
    assert.equal(res.status, 200);
    assert.equal(relayed.length, 1, 'one pooled session through the relay');
    const quietSince = Date.now();
    await new Promise<void>((resolve) => (relayed[0]!.destroyed ? resolve() : relayed[0]!.once('close', () => resolve())));
    assert.ok(Date.now() - quietSince >= IDLE_MS - 50, `closed after ${Date.now() - quietSince}ms`);
    // The next request opens a new session and succeeds.
    assert.equal((await httpGet(caller.outbound.backend!, '/again')).status, 200);
  });
});
