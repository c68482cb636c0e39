import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate as NodeX509, createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import { createRootCa, CertificateAuthority } from '../../../src/pki/ca.js';
import { generateWorkloadKey } from '../../../src/pki/workload-key.js';
import { caPin, checkPeerCertificate } from '../../../src/pki/spiffe.js';
import { x509 } from '../../../src/pki/x509-provider.js';
import { forgeCertificate, foreignCa, derOf } from '../../helpers/certs.js';

const TD = 'trellis.local';
const ORDERS = `spiffe://${TD}/service/orders`;
const HOUR = 3_600_000;
const YEAR = 365.25 * 24 * HOUR;

const root = await createRootCa(TD);
const ca = await CertificateAuthority.load(root, TD);

function uriSans(certPem: string): string[] {
  const cert = new x509.X509Certificate(certPem);
  return [...cert.getExtensions(x509.SubjectAlternativeNameExtension)].flatMap((e) => e.names.items.filter((n) => n.type === 'url').map((n) => n.value));
}

test('root CA: P-256, CA:TRUE critical, keyCertSign|cRLSign critical, SKI, ~10 years, self-signed', async () => {
  const cert = new x509.X509Certificate(root.certPem);
  assert.deepEqual({ ...(cert.publicKey.algorithm as object) }, { name: 'ECDSA', namedCurve: 'P-256' });
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  assert.ok(bc);
  assert.equal(bc.ca, true);
  assert.equal(bc.critical, true);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  assert.ok(ku);
  assert.equal(ku.critical, true);
  assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  assert.ok(cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
  assert.match(cert.subject, /CN=Trellis Root CA/);
  assert.match(cert.subject, /O=Trellis/);
  const lifetime = cert.notAfter.getTime() - Date.now();
  assert.ok(lifetime > 9.9 * YEAR && lifetime < 10.1 * YEAR, `lifetime ${lifetime / YEAR} years`);
  assert.ok(await cert.isSelfSigned());
  assert.ok(await cert.verify({ signatureOnly: true }));

  // Independent parse with node's OpenSSL-backed X509Certificate; the key is a usable PKCS#8 P-256 key.
  const nodeCert = new NodeX509(root.certPem);
  assert.equal(nodeCert.ca, true);
  assert.match(root.keyPem, /^-----BEGIN PRIVATE KEY-----/);
  const key = createPrivateKey(root.keyPem);
  assert.equal(key.asymmetricKeyType, 'ec');
  assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.ok(nodeCert.checkPrivateKey(key));

  assert.equal(ca.trustDomain, TD);
  assert.equal(ca.certPem, root.certPem);
  assert.equal(ca.pin, caPin(root.certPem));
  assert.equal(ca.notAfter.getTime(), cert.notAfter.getTime());
});

test('createRootCa rejects a malformed trust domain', async () => {
  await assert.rejects(createRootCa('Bad Domain'), /trust domain/);
});

test('signWorkload: one URI SAN, CA:FALSE, usages, serial, validity, chains to the root', async () => {
  const { keyPem, csrPem } = await generateWorkloadKey('orders');
  const before = Date.now();
  const { certPem, notAfter, serial } = await ca.signWorkload(csrPem, ORDERS, HOUR);
  const cert = new x509.X509Certificate(certPem);

  assert.deepEqual(uriSans(certPem), [ORDERS]);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
  assert.equal(san.names.items.length, 1);
  const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
  assert.equal(bc.ca, false);
  assert.equal(bc.critical, true);
  const ku = cert.getExtension(x509.KeyUsagesExtension)!;
  assert.equal(ku.critical, true);
  assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension)!;
  assert.deepEqual([...eku.usages].sort(), [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth].sort());
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension)!;
  const rootSki = new x509.X509Certificate(root.certPem).getExtension(x509.SubjectKeyIdentifierExtension)!;
  assert.equal(aki.keyId, rootSki.keyId);
  assert.ok(cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);

  assert.match(serial, /^[0-9a-f]{32}$/);
  assert.ok(parseInt(serial.slice(0, 2), 16) < 0x80, 'serial is positive');
  assert.equal(cert.serialNumber, serial);
  const sigAlg = cert.signatureAlgorithm as unknown as { name: string; hash: { name: string } };
  assert.equal(sigAlg.name, 'ECDSA');
  assert.equal(sigAlg.hash.name, 'SHA-256');

  // notBefore = now - 60s, notAfter = now + ttl (second precision).
  assert.ok(Math.abs(cert.notBefore.getTime() - (before - 60_000)) < 5_000);
  assert.ok(Math.abs(notAfter.getTime() - (before + HOUR)) < 5_000);
  assert.equal(notAfter.getTime(), cert.notAfter.getTime());

  // Chains to the root (node/OpenSSL), and the cert belongs to the CSR's key.
  const nodeCert = new NodeX509(certPem);
  const nodeRoot = new NodeX509(root.certPem);
  assert.ok(nodeCert.checkIssued(nodeRoot));
  assert.ok(nodeCert.verify(nodeRoot.publicKey));
  assert.equal(nodeCert.ca, false);
  assert.ok(nodeCert.checkPrivateKey(createPrivateKey(keyPem)));
  assert.deepEqual(checkPeerCertificate(derOf(certPem), TD), { ok: true, spiffeId: ORDERS, trustDomain: TD, service: 'orders' });
});

test('signWorkload ignores the subject and SANs requested in the CSR', async () => {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: ['admin'] }, { O: ['Evil'] }],
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: `spiffe://${TD}/service/admin` },
        { type: 'url', value: 'spiffe://other.local/service/orders' },
        { type: 'dns', value: 'admin.trellis.local' },
        { type: 'ip', value: '10.0.0.1' },
      ]),
      new x509.BasicConstraintsExtension(true, undefined, true),
    ],
  });
  assert.ok(await csr.verify());
  const { certPem } = await ca.signWorkload(csr.toString('pem'), ORDERS, HOUR);
  const cert = new x509.X509Certificate(certPem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
  assert.deepEqual(san.names.toJSON(), [{ type: 'url', value: ORDERS }]);
  assert.doesNotMatch(cert.subject, /admin|Evil/);
  assert.equal(cert.getExtension(x509.BasicConstraintsExtension)!.ca, false);
  assert.equal(new NodeX509(certPem).subjectAltName, `URI:${ORDERS}`);
});

test('signWorkload refuses a CSR with a bad signature', async () => {
  const { csrPem } = await generateWorkloadKey('orders');
  const der = new Uint8Array(x509.PemConverter.decode(csrPem)[0]!);
  // Corrupt the subject CN inside the signed part: the self-signature no longer verifies.
  const at = Buffer.from(der).indexOf(Buffer.from('orders'));
  assert.ok(at > 0);
  der[at] = 'x'.charCodeAt(0);
  const tampered = x509.PemConverter.encode(der.buffer as ArrayBuffer, 'CERTIFICATE REQUEST');
  await assert.rejects(ca.signWorkload(tampered, ORDERS, HOUR), /CSR signature is invalid/);
});

test('signWorkload refuses a CSR whose key is RSA or another curve', async () => {
  const rsa = (await webcrypto.subtle.generateKey(
    { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    true,
    ['sign', 'verify'],
  )) as webcrypto.CryptoKeyPair;
  const rsaCsr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=orders', keys: rsa, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' } });
  assert.ok(await rsaCsr.verify());
  await assert.rejects(ca.signWorkload(rsaCsr.toString('pem'), ORDERS, HOUR), /ECDSA P-256/);

  const p384 = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const p384Csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=orders', keys: p384, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } });
  await assert.rejects(ca.signWorkload(p384Csr.toString('pem'), ORDERS, HOUR), /ECDSA P-256/);
});

test('signWorkload refuses garbage, identities outside the trust domain and bad TTLs', async () => {
  const { csrPem } = await generateWorkloadKey();
  await assert.rejects(ca.signWorkload('not a csr', ORDERS, HOUR), /CSR cannot be parsed/);
  await assert.rejects(ca.signWorkload(root.certPem, ORDERS, HOUR), /CSR cannot be parsed/);
  await assert.rejects(ca.signWorkload(csrPem, 'spiffe://other.local/service/orders', HOUR), /trust domain/);
  await assert.rejects(ca.signWorkload(csrPem, `spiffe://${TD}/service/a/b`, HOUR), /invalid workload SPIFFE ID/);
  // A workload can never be given a non-workload identity such as the control plane's.
  await assert.rejects(ca.signWorkload(csrPem, `spiffe://${TD}/control-plane`, HOUR), /invalid workload SPIFFE ID/);
  await assert.rejects(ca.signWorkload(csrPem, ORDERS, 0), /TTL/);
  await assert.rejects(ca.signWorkload(csrPem, ORDERS, Number.NaN), /TTL/);
});

test('signWorkload caps notAfter at the CA notAfter', async () => {
  const shortRoot = await forgeCertificate({ isCa: true, notAfter: new Date(Date.now() + 2 * HOUR) });
  const shortCa = await CertificateAuthority.load(shortRoot, TD);
  const { csrPem } = await generateWorkloadKey();
  const { notAfter } = await shortCa.signWorkload(csrPem, ORDERS, 24 * HOUR);
  assert.equal(notAfter.getTime(), shortCa.notAfter.getTime());
});

test('CertificateAuthority.load refuses mismatched keys, non-CA certs, other trust domains, garbage', async () => {
  const other = await foreignCa();
  await assert.rejects(CertificateAuthority.load({ certPem: root.certPem, keyPem: other.keyPem }, TD), /does not match/);
  const leaf = await forgeCertificate({ issuer: root, uris: [ORDERS] });
  await assert.rejects(CertificateAuthority.load(leaf, TD), /not a CA/);
  await assert.rejects(CertificateAuthority.load(root, 'other.local'), /trust domain/);
  await assert.rejects(CertificateAuthority.load({ certPem: 'nope', keyPem: root.keyPem }, TD), /CA certificate/);
  await assert.rejects(CertificateAuthority.load({ certPem: root.certPem, keyPem: 'nope' }, TD), /CA key/);
  const expired = await forgeCertificate({ isCa: true, notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) });
  await assert.rejects(CertificateAuthority.load(expired, TD), /expired/);
});

test('issueServingCertificate: URI + DNS + IP SANs, fresh P-256 key, serverAuth+clientAuth', async () => {
  const cpId = `spiffe://${TD}/control-plane`;
  const { certPem, keyPem, notAfter } = await ca.issueServingCertificate({ spiffeId: cpId, dnsNames: ['localhost', 'cp.trellis.local'], ips: ['127.0.0.1', '::1'], ttlMs: HOUR });
  const nodeCert = new NodeX509(certPem);
  assert.equal(nodeCert.subjectAltName, `URI:${cpId}, DNS:localhost, DNS:cp.trellis.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1`);
  assert.ok(nodeCert.checkIssued(new NodeX509(root.certPem)));
  assert.ok(nodeCert.checkPrivateKey(createPrivateKey(keyPem)));
  assert.equal(createPublicKey(keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.deepEqual([...(nodeCert.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  assert.equal(nodeCert.ca, false);
  assert.ok(notAfter.getTime() > Date.now());
  // The control plane's identity is not a workload identity: peers checking workloads refuse it.
  assert.equal(checkPeerCertificate(derOf(certPem), TD).ok, false);
  const svc = await ca.issueServingCertificate({ spiffeId: `spiffe://${TD}/service/gateway`, dnsNames: [], ips: [], ttlMs: HOUR });
  assert.equal(checkPeerCertificate(derOf(svc.certPem), TD).ok, true);
  await assert.rejects(ca.issueServingCertificate({ spiffeId: 'spiffe://other.local/control-plane', dnsNames: [], ips: [], ttlMs: HOUR }), /trust domain/);
  await assert.rejects(ca.issueServingCertificate({ spiffeId: `spiffe://${TD}/../x`, dnsNames: [], ips: [], ttlMs: HOUR }), /invalid SPIFFE ID/);
  await assert.rejects(ca.issueServingCertificate({ spiffeId: `https://${TD}/control-plane`, dnsNames: [], ips: [], ttlMs: HOUR }), /invalid SPIFFE ID/);
  await assert.rejects(ca.issueServingCertificate({ spiffeId: cpId, dnsNames: [], ips: ['not-an-ip'], ttlMs: HOUR }), /IP/);
  await assert.rejects(ca.issueServingCertificate({ spiffeId: cpId, dnsNames: ['bad name'], ips: [], ttlMs: HOUR }), /DNS/);
});

test('generateWorkloadKey: PKCS#8 P-256 key and a self-signed CSR; fresh keys each call', async () => {
  const a = await generateWorkloadKey('orders');
  const b = await generateWorkloadKey();
  assert.match(a.keyPem, /^-----BEGIN PRIVATE KEY-----/);
  assert.match(a.csrPem, /^-----BEGIN CERTIFICATE REQUEST-----/);
  assert.equal(createPrivateKey(a.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const csr = new x509.Pkcs10CertificateRequest(a.csrPem);
  assert.ok(await csr.verify());
  assert.match(csr.subject, /CN=orders/);
  // The CSR carries the public half of keyPem.
  const spki = createPublicKey(a.keyPem).export({ type: 'spki', format: 'der' });
  assert.deepEqual(Buffer.from(csr.publicKey.rawData), spki);
  assert.notEqual(a.keyPem, b.keyPem);
  assert.ok(await new x509.Pkcs10CertificateRequest(b.csrPem).verify());
});
