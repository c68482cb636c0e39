/**
 * A restart with the same data dir keeps the resources, the CA (same pin) and the token-signing key
 * (a token created before the restart still obtains a certificate).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { caPin } from '../../../src/pki/index.js';
import { TrellisClient } from '../../../src/sdk/client.js';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { enroll, request } from './xds-client.js';

describe('control plane restart', () => {
  after(stopAll);

  it('keeps resources, the CA and join tokens across a restart; exits 0 on SIGTERM', async () => {
    const first = await startControlPlane();
    const api1 = new TrellisClient({ baseUrl: `http://${first.api}` });
    await api1.apply([
      { apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'orders' }, spec: { protocol: 'grpc', port: 9000 } },
      { apiVersion: 'trellis.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'orders-lb' }, spec: { targetRef: { name: 'orders' }, loadBalancer: { type: 'LeastRequest' } } },
    ]);
    const { token } = await api1.createToken('orders');
    const pin1 = caPin((await request(first.xds, 'GET', '/v1/ca')).json.caPem);
    const version1 = Number((await api1.status()).version);
    assert.equal(await first.stop('SIGTERM'), 0);

    const second = await startControlPlane(['--data-dir', first.dataDir]);
    const api2 = new TrellisClient({ baseUrl: `http://${second.api}` });
    assert.deepEqual((await api2.list('services')).map((r) => r.metadata.name), ['orders']);
    const tp = await api2.get('TrafficPolicy', 'orders-lb');
    assert.equal(tp.kind === 'TrafficPolicy' && tp.spec.loadBalancer?.type, 'LeastRequest');
    const ca2 = (await request(second.xds, 'GET', '/v1/ca')).json;
    assert.equal(caPin(ca2.caPem), pin1, 'same CA');
    assert.ok(Number((await api2.status()).version) > version1, 'the config version keeps increasing');

    const got = await enroll(second.xds, token);
    assert.equal(got.status, 200, JSON.stringify(got.json));
    const san = new X509Certificate(got.certPem).subjectAltName ?? '';
    assert.deepEqual(san.split(', ').filter((s) => s.startsWith('URI:')), ['URI:spiffe://trellis.local/service/orders']);
    assert.equal(await second.stop('SIGINT'), 0);
  });

  it('refuses --store etcd without --etcd-endpoints with exit code 2', async () => {
    const { runCli } = await import('../../helpers/processes.js');
    const res = await runCli(['control-plane', '--store', 'etcd', '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0']);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /--store etcd needs --etcd-endpoints/);
  });
});
