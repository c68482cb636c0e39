/**
 * The xDS endpoint's identity side: the CA, certificates for join tokens (only the token's service),
 * renewal with a client certificate, and clear 401s for expired, forged or missing credentials.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { caPin, generateWorkloadKey } from '../../../src/pki/index.js';
import { TrellisClient } from '../../../src/sdk/client.js';
import { startControlPlane, stopAll, type StartedControlPlane } from '../../helpers/processes.js';
import { enroll, request, signWithDataDirKey } from './xds-client.js';

function uriSans(certPem: string): string[] {
  const san = new X509Certificate(certPem).subjectAltName ?? '';
  return san.split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
}

describe('xDS identity endpoints', () => {
  let cp: StartedControlPlane;
  let client: TrellisClient;

  before(async () => {
    cp = await startControlPlane();
    client = new TrellisClient({ baseUrl: `http://${cp.api}` });
  });
  after(stopAll);

  it('serves the CA, whose pin is the one join tokens carry, with a serving certificate for spiffe://TD/control-plane', async () => {
    const res = await request(cp.xds, 'GET', '/v1/ca');
    assert.equal(res.status, 200);
    assert.equal(res.json.trustDomain, 'trellis.local');
    const { token } = await client.createToken('web');
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(claims.pin, caPin(res.json.caPem));
    assert.equal(claims.cp, cp.xds);
    assert.equal(claims.td, 'trellis.local');
    assert.equal(claims.svc, 'web');
    const serving = new X509Certificate(res.peerCert!.raw);
    assert.ok(serving.verify(new X509Certificate(res.json.caPem).publicKey), 'the serving certificate is signed by the CA');
    assert.deepEqual(uriSans(serving.toString()), ['spiffe://trellis.local/control-plane']);
  });

  it('a token for A obtains exactly A\'s identity, whatever the CSR asks for', async () => {
    const { token } = await client.createToken('alpha');
    const got = await enroll(cp.xds, token, 'spiffe://trellis.local/service/beta');
    assert.equal(got.status, 200, JSON.stringify(got.json));
    assert.equal(got.spiffeId, 'spiffe://trellis.local/service/alpha');
    assert.deepEqual(uriSans(got.certPem), ['spiffe://trellis.local/service/alpha']);
    const cert = new X509Certificate(got.certPem);
    assert.ok(cert.verify(new X509Certificate(got.caPem).publicKey));
    const ttl = new Date(cert.validTo).getTime() - Date.now();
    assert.ok(ttl > 23 * 3_600_000 && ttl <= 24 * 3_600_000 + 60_000, 'default certificateTTL is 24h');
    const status = await client.status();
    assert.ok(status.certificatesIssued >= 1);
    const metrics = await client.metrics();
    assert.match(metrics, /^trellis_cp_certificates_issued_total [1-9]/m);
  });

  it('renews with the current client certificate (no token): same identity', async () => {
    const { token } = await client.createToken('alpha');
    const first = await enroll(cp.xds, token);
    const { csrPem } = await generateWorkloadKey();
    const res = await request(cp.xds, 'POST', '/v1/certificates', { csr: csrPem }, { ca: first.caPem, cert: first });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(res.json.spiffeId, 'spiffe://trellis.local/service/alpha');
  });

  it('refuses an expired token with 401 and a clear message', async () => {
    const now = Math.floor(Date.now() / 1000);
    const ca = await request(cp.xds, 'GET', '/v1/ca');
    const expired = await signWithDataDirKey(cp.dataDir, {
      svc: 'alpha', cp: cp.xds, pin: caPin(ca.json.caPem), td: 'trellis.local', iat: now - 7200, exp: now - 3600, jti: 'x',
    });
    const res = await enroll(cp.xds, expired);
    assert.equal(res.status, 401);
    assert.deepEqual(res.json, { error: 'UNAUTHENTICATED', message: 'join token expired' });
  });

  it('refuses a forged token (service changed) with 401', async () => {
    const { token } = await client.createToken('alpha');
    const [h, p, s] = token.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    claims.svc = 'beta';
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    const res = await enroll(cp.xds, forged);
    assert.equal(res.status, 401);
    assert.deepEqual(res.json, { error: 'UNAUTHENTICATED', message: 'join token signature invalid' });
  });

  it('refuses a request with neither token nor client certificate', async () => {
    const { csrPem } = await generateWorkloadKey();
    const res = await request(cp.xds, 'POST', '/v1/certificates', { csr: csrPem });
    assert.equal(res.status, 401);
    assert.equal(res.json.error, 'UNAUTHENTICATED');
    assert.match(res.json.message, /no join token, and no client certificate/);
  });

  it('answers 400 with the reason for a bad CSR', async () => {
    const { token } = await client.createToken('alpha');
    const res = await request(cp.xds, 'POST', '/v1/certificates', { csr: 'not a csr', token });
    assert.equal(res.status, 400);
    assert.equal(res.json.error, 'BAD_REQUEST');
    assert.match(res.json.message, /CSR/);
  });

  it('takes the certificate TTL from the MeshConfig', async () => {
    await client.apply([{ apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { certificateTTL: '1h' } }]);
    const { token } = await client.createToken('alpha');
    const got = await enroll(cp.xds, token);
    const ttl = new Date(new X509Certificate(got.certPem).validTo).getTime() - Date.now();
    assert.ok(ttl > 50 * 60_000 && ttl <= 3_600_000 + 60_000, `ttl ${ttl}`);
  });
});
