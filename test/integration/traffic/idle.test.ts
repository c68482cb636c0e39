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
