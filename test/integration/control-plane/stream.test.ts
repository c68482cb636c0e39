/**
 * The config stream: hello -> snapshot; ACK/NACK recorded; every change pushed as a new version;
 * goodbye deregisters at once; a dropped stream keeps the instance (draining) for the grace period.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TrellisClient, TrellisApiError } from '../../../src/sdk/client.js';
import { Snapshot } from '../../../src/api/schema/snapshot.js';
import { startControlPlane, stopAll, type StartedControlPlane } from '../../helpers/processes.js';
import { enroll, hello, openStream, type ClientCert } from './xds-client.js';

async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('xDS config stream', () => {
  let cp: StartedControlPlane;
  let client: TrellisClient;
  const certs: Record<string, ClientCert & { caPem: string }> = {};

  before(async () => {
    cp = await startControlPlane(['--instance-grace', '300ms']);
    client = new TrellisClient({ baseUrl: `http://${cp.api}` });
    for (const svc of ['web', 'api']) certs[svc] = await enroll(cp.xds, (await client.createToken(svc)).token);
  });
  after(stopAll);

  it('sends the current snapshot on hello, records the ACK, and pushes every change', async () => {
    await client.apply([
      { apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'api' }, spec: { protocol: 'grpc' } },
      { apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'web-only' }, spec: { targetRef: { name: 'api' }, action: 'ALLOW', rules: [{ from: [{ services: ['web'] }] }] } },
    ]);
    const s = await openStream(cp.xds, certs.web!);
    assert.equal(s.status, 200);
    s.send(hello('web-1', 'web', '127.0.0.1:7001', { version: 'v1' }));
    const first = await s.next((m) => m.type === 'snapshot');
    const snap = Snapshot.parse(first.snapshot);
    assert.equal(snap.trustDomain, 'trellis.local');
    assert.equal(snap.clusters.api?.protocol, 'grpc');
    assert.deepEqual(snap.authorizationPolicies, [], 'the policy targets api, not web');
    s.send({ type: 'ack', version: snap.version });

    // Its own registration arrives as a newer version with the endpoint.
    const withSelf = await s.next((m) => m.type === 'snapshot' && m.snapshot.clusters.web?.endpoints.length === 1);
    assert.ok(Number(withSelf.snapshot.version) > Number(snap.version));
    assert.deepEqual(withSelf.snapshot.clusters.web.endpoints, [{ id: 'web-1', address: '127.0.0.1:7001', labels: { version: 'v1' }, draining: false }]);
    s.send({ type: 'ack', version: withSelf.snapshot.version });
    const proxies = await eventually(async () => {
      const p = await client.proxies();
      return p.proxies.find((x) => x.instanceId === 'web-1' && x.ackedVersion === withSelf.snapshot.version) ? p : undefined;
    });
    assert.equal(proxies.proxies.find((x) => x.instanceId === 'web-1')!.connected, true);

    // A resource change is pushed.
    await client.apply([{ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'extra' }, spec: { protocol: 'tcp' } }]);
    const pushed = await s.next((m) => m.type === 'snapshot' && m.snapshot.clusters.extra);
    s.send({ type: 'nack', version: pushed.snapshot.version, error: 'cannot build listener' });
    const nacked = await eventually(async () => (await client.proxies()).proxies.find((x) => x.lastNack?.version === pushed.snapshot.version));
    assert.equal(nacked.lastNack!.error, 'cannot build listener');
    assert.match(await client.metrics(), /^trellis_cp_nacks_total\{service="web"\} 1$/m);
    assert.match(await client.metrics(), /^trellis_cp_connected_proxies 1$/m);
    assert.match(await client.metrics(), /^trellis_cp_push_seconds_count [1-9]/m);

    // Describe shows the instance.
    const d = await client.describeService('web');
    assert.equal(d.instances[0]!.id, 'web-1');
    assert.equal(d.instances[0]!.connected, true);
    assert.equal(d.source, 'registry');

    // Goodbye removes it at once.
    s.send({ type: 'goodbye' });
    s.end();
    await s.closed;
    await eventually(async () => (await client.services()).every((x) => x.name !== 'web'));
    await assert.rejects(client.describeService('web'), (err: unknown) => err instanceof TrellisApiError && err.status === 404);
  });

  it('gives a service its own authorization policies', async () => {
    const s = await openStream(cp.xds, certs.api!);
    s.send(hello('api-1', 'api', '127.0.0.1:7100'));
    const m = await s.next((x) => x.type === 'snapshot');
    assert.deepEqual(m.snapshot.authorizationPolicies.map((p: { metadata: { name: string } }) => p.metadata.name), ['web-only']);
    s.send({ type: 'goodbye' });
    s.end();
    await s.closed;
  });

  it('keeps a dropped instance as draining for the grace period, then removes it; other proxies see both', async () => {
    const watcher = await openStream(cp.xds, certs.api!);
    watcher.send(hello('api-watch', 'api', '127.0.0.1:7200'));
    await watcher.next((m) => m.type === 'snapshot');

    const dropped = await openStream(cp.xds, certs.web!);
    dropped.send(hello('web-2', 'web', '127.0.0.1:7002'));
    await dropped.next((m) => m.type === 'snapshot');
    await watcher.next((m) => m.type === 'snapshot' && m.snapshot.clusters.web?.endpoints[0]?.draining === false);
    dropped.destroy(); // no goodbye
    const draining = await watcher.next((m) => m.type === 'snapshot' && m.snapshot.clusters.web?.endpoints[0]?.draining === true);
    assert.equal(draining.snapshot.clusters.web.endpoints[0].id, 'web-2');
    const gone = await watcher.next((m) => m.type === 'snapshot' && !m.snapshot.clusters.web);
    assert.ok(Number(gone.snapshot.version) > Number(draining.snapshot.version));
    watcher.send({ type: 'goodbye' });
    watcher.end();
  });

  it('a reconnect within the grace period keeps the instance', async () => {
    const first = await openStream(cp.xds, certs.web!);
    first.send(hello('web-3', 'web', '127.0.0.1:7003'));
    await first.next((m) => m.type === 'snapshot');
    first.destroy();
    await eventually(async () => (await client.describeService('web')).instances.find((i) => i.id === 'web-3' && !i.connected));
    const second = await openStream(cp.xds, certs.web!);
    second.send(hello('web-3', 'web', '127.0.0.1:7003'));
    await second.next((m) => m.type === 'snapshot');
    const inst = await eventually(async () => (await client.describeService('web')).instances.find((i) => i.id === 'web-3' && i.connected));
    assert.equal(inst.draining, false);
    second.send({ type: 'goodbye' });
    second.end();
    await second.closed;
  });

  it('refuses a hello for another service than the certificate\'s', async () => {
    const s = await openStream(cp.xds, certs.web!);
    s.send(hello('sneaky', 'api', '127.0.0.1:7004'));
    const err = await s.next((m) => m.type === 'error');
    assert.match(err.error, /certificate is spiffe:\/\/trellis\.local\/service\/web/);
    await s.closed;
  });

  it('refuses an invalid message and a message before hello', async () => {
    const a = await openStream(cp.xds, certs.web!);
    a.send({ type: 'ack' });
    assert.match((await a.next((m) => m.type === 'error')).error, /invalid message/);
    await a.closed;
    const b = await openStream(cp.xds, certs.web!);
    b.send({ type: 'ack', version: '1' });
    assert.match((await b.next((m) => m.type === 'error')).error, /first message must be hello/);
    await b.closed;
  });

  it('requires a client certificate for the stream', async () => {
    const { request } = await import('./xds-client.js');
    const res = await request(cp.xds, 'POST', '/v1/stream', {});
    assert.equal(res.status, 401);
    assert.equal(res.json.error, 'UNAUTHENTICATED');
  });
});
