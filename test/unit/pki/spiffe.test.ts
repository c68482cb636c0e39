import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spiffeIdFor, parseSpiffeId, checkPeerCertificate, caPin, peerCheckCacheSize, spiffeIdTrustDomain } from '../../../src/pki/spiffe.js';
import { createRootCa, CertificateAuthority } from '../../../src/pki/ca.js';
import { generateWorkloadKey } from '../../../src/pki/workload-key.js';
import { forgeCertificate, foreignCa, derOf } from '../../helpers/certs.js';

const TD = 'trellis.local';
const GOOD = `spiffe://${TD}/service/orders`;
const HOUR = 3_600_000;

const root = await createRootCa(TD);
const ca = await CertificateAuthority.load(root, TD);

test('spiffeIdFor builds the canonical ID and rejects malformed parts', () => {
  assert.equal(spiffeIdFor(TD, 'orders'), GOOD);
  assert.throws(() => spiffeIdFor('Trellis.Local', 'orders'), /trust domain/);
  assert.throws(() => spiffeIdFor(TD, 'a/../b'), /service name/);
  assert.throws(() => spiffeIdFor(TD, ''), /service name/);
});

test('parseSpiffeId is strict', () => {
  assert.deepEqual(parseSpiffeId(GOOD), { trustDomain: TD, service: 'orders' });
  for (const bad of [
    `SPIFFE://${TD}/service/orders`,
    `https://${TD}/service/orders`,
    `spiffe://Trellis.local/service/orders`,
    `spiffe://${TD}/service/orders/extra`,
    `spiffe://${TD}/service/`,
    `spiffe://${TD}/services/orders`,
    `spiffe://${TD}/service/orders?x=1`,
    `spiffe://${TD}/service/orders#f`,
    `spiffe://${TD}:443/service/orders`,
    `spiffe://user@${TD}/service/orders`,
    `spiffe://${TD}/service/Orders`,
    `spiffe://${TD}/service/or%64ers`,
    `spiffe://${TD}/service/..`,
    `spiffe://${TD}//service/orders`,
    `spiffe:///service/orders`,
    `spiffe://${TD}`,
    ` ${GOOD}`,
    `${GOOD}\n`,
  ]) {
    assert.equal(parseSpiffeId(bad), null, bad);
  }
});

test('spiffeIdTrustDomain accepts any well-formed SPIFFE ID path', () => {
  assert.equal(spiffeIdTrustDomain(`spiffe://${TD}/control-plane`), TD);
  assert.equal(spiffeIdTrustDomain(GOOD), TD);
  for (const bad of [`spiffe://${TD}`, `spiffe://${TD}/`, `spiffe://${TD}/a//b`, `spiffe://${TD}/..`, `spiffe://${TD}/a?b`, `spiffe://Bad/x`, `http://${TD}/x`]) {
    assert.equal(spiffeIdTrustDomain(bad), null, bad);
  }
});

test('checkPeerCertificate accepts a CA-issued workload certificate', async () => {
  const { csrPem } = await generateWorkloadKey();
  const { certPem } = await ca.signWorkload(csrPem, GOOD, HOUR);
  const res = checkPeerCertificate(derOf(certPem), TD);
  assert.deepEqual(res, { ok: true, spiffeId: GOOD, trustDomain: TD, service: 'orders' });
});

test('checkPeerCertificate accepts a Uint8Array view into a larger buffer', async () => {
  const { certPem } = await forgeCertificate({ issuer: root, uris: [GOOD] });
  const der = derOf(certPem);
  const big = new Uint8Array(der.length + 20);
  big.set(der, 10);
  const res = checkPeerCertificate(big.subarray(10, 10 + der.length), TD);
  assert.equal(res.ok, true);
});

const refusals: Array<[string, () => Promise<{ certPem: string }>, RegExp, Date?]> = [
  ['two URI SANs', () => forgeCertificate({ issuer: root, uris: [GOOD, `spiffe://${TD}/service/admin`] }), /2 URI SANs/],
  ['no URI SAN (DNS only)', () => forgeCertificate({ issuer: root, dnsNames: ['orders.trellis.local'] }), /0 URI SANs/],
  ['no SAN at all', () => forgeCertificate({ issuer: root }), /no subjectAltName/],
  ['non-spiffe URI', () => forgeCertificate({ issuer: root, uris: [`https://${TD}/service/orders`] }), /not a spiffe/],
  ['malformed spiffe path', () => forgeCertificate({ issuer: root, uris: [`spiffe://${TD}/ns/default/sa/orders`] }), /spiffe:\/\/TRUST_DOMAIN\/service\/NAME/],
  ['another trust domain', () => forgeCertificate({ issuer: root, uris: ['spiffe://evil.local/service/orders'] }), /trust domain/],
  ['CA:TRUE', () => forgeCertificate({ issuer: root, uris: [GOOD], isCa: true }), /cA:TRUE/],
  ['expired', () => forgeCertificate({ issuer: root, uris: [GOOD], notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) }), /expired/],
  ['not yet valid', () => forgeCertificate({ issuer: root, uris: [GOOD], notBefore: new Date(Date.now() + HOUR), notAfter: new Date(Date.now() + 2 * HOUR) }), /not yet valid/],
];

for (const [name, make, reason] of refusals) {
  test(`checkPeerCertificate refuses: ${name}`, async () => {
    const { certPem } = await make();
    const res = checkPeerCertificate(derOf(certPem), TD);
    assert.equal(res.ok, false);
    assert.match((res as { reason: string }).reason, reason);
  });
}

test('checkPeerCertificate refuses garbage and empty input', () => {
  assert.equal(checkPeerCertificate(Buffer.alloc(0), TD).ok, false);
  assert.equal(checkPeerCertificate(Buffer.from('not a certificate'), TD).ok, false);
});

test('the time check is not cached: the same DER expires as the clock moves', async () => {
  const { certPem } = await forgeCertificate({ issuer: root, uris: [GOOD], notAfter: new Date(Date.now() + HOUR) });
  const der = derOf(certPem);
  assert.equal(checkPeerCertificate(der, TD).ok, true);
  const later = checkPeerCertificate(der, TD, new Date(Date.now() + 2 * HOUR));
  assert.deepEqual(later, { ok: false, reason: 'peer certificate has expired' });
  const earlier = checkPeerCertificate(der, TD, new Date(Date.now() - HOUR));
  assert.deepEqual(earlier, { ok: false, reason: 'peer certificate is not yet valid' });
  // Same DER, another trust domain: the trust-domain comparison is not cached either.
  assert.equal(checkPeerCertificate(der, 'other.local').ok, false);
  assert.equal(checkPeerCertificate(der, TD).ok, true);
});

test('the structural cache is bounded at 1024 entries', () => {
  for (let i = 0; i < 1100; i++) checkPeerCertificate(Buffer.from(`garbage-${i}`), TD);
  assert.equal(peerCheckCacheSize(), 1024);
});

test('caPin is stable, well-formed and differs between CAs', async () => {
  const other = await foreignCa();
  const pin = caPin(root.certPem);
  assert.match(pin, /^sha256:[0-9a-f]{64}$/);
  assert.equal(caPin(root.certPem), pin);
  assert.equal(caPin(root.certPem.replace(/\n/g, '\r\n')), pin);
  assert.equal(ca.pin, pin);
  assert.notEqual(caPin(other.certPem), pin);
  assert.throws(() => caPin('not pem'), /caPin/);
  assert.throws(() => caPin(root.certPem + other.certPem), /exactly one/);
});
