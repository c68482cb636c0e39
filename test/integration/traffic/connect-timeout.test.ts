/**
 * TrafficPolicy.timeouts.connect bounds the mTLS connect to an instance: an instance whose address
 * accepts TCP but never completes the handshake answers 503 UPSTREAM_CONNECT_FAILED in about that
 * time, not the 5 s default.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { client, startMeshProxy, waitForConfig, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';
import { enroll, hello, openStream, type ConfigStream } from '../control-plane/xds-client.js';

const CONNECT_MS = 300;

describe('connect timeout', () => {
  const apps: TestApp[] = [];
  let caller: MeshProxy;
  let blackhole: net.Server;
  const held: net.Socket[] = [];
  let registration: ConfigStream;

  before(async () => {
    const cp = await startControlPlane();
    // Accepts TCP, never answers the TLS handshake.
    blackhole = net.createServer((s) => { held.push(s); s.on('error', () => {}); });
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
    const address = `127.0.0.1:${(blackhole.address() as net.AddressInfo).port}`;
    // Register an instance of "stuck" at the blackhole, as a proxy would (token → SVID → hello).
    const { token } = await client(cp).createToken('stuck');
    const cert = await enroll(cp.xds, token);
    registration = await openStream(cp.xds, cert);
    registration.send(hello('stuck-1', 'stuck', address));
    const c = await startHttpApp('caller');
    apps.push(c);
    caller = await startMeshProxy(cp, { service: 'caller', app: c.address, outbound: ['stuck'] });
    await waitForEndpoints(caller, 'stuck', 1);
    await client(cp).apply([{
      apiVersion: 'trellis.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'stuck-connect' },
      spec: { targetRef: { name: 'stuck' }, timeouts: { connect: `${CONNECT_MS}ms` } },
    }]);
    await waitForConfig(caller, (s) => s.clusters.stuck?.trafficPolicy?.timeouts?.connect === `${CONNECT_MS}ms`, 'the connect timeout');
  });

  after(async () => {
    registration?.destroy();
    await stopAll();
    for (const s of held) s.destroy();
    await new Promise<void>((r) => blackhole.close(() => r()));
    await Promise.all(apps.map((a) => a.close()));
  });

  it('answers 503 UPSTREAM_CONNECT_FAILED after timeouts.connect', { timeout: 10_000 }, async () => {
    const started = Date.now();
    const res = await httpGet(caller.outbound.stuck!, '/');
    const took = Date.now() - started;
    assert.equal(res.status, 503);
    assert.equal(res.headers['x-trellis-error'], 'UPSTREAM_CONNECT_FAILED');
    assert.match(res.json().message, /timed out after 300ms/);
    assert.ok(took >= CONNECT_MS, `answered after ${took}ms`);
  });
});
