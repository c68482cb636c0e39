import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createRootCa, CertificateAuthority } from '../../../src/pki/ca.js';
import { generateWorkloadKey } from '../../../src/pki/workload-key.js';
import { checkPeerCertificate } from '../../../src/pki/spiffe.js';
import { x509 } from '../../../src/pki/x509-provider.js';
import { forgeCertificate, foreignCa } from '../../helpers/certs.js';

const TD = 'trellis.local';
const HOUR = 3_600_000;

const root = await createRootCa(TD);
const ca = await CertificateAuthority.load(root, TD);
const serving = await ca.issueServingCertificate({
  spiffeId: `spiffe://${TD}/control-plane`,
  dnsNames: ['localhost'],
  ips: ['127.0.0.1'],
  ttlMs: HOUR,
});

async function workloadCert(authority: CertificateAuthority, service: string): Promise<{ key: string; cert: string }> {
  const { keyPem, csrPem } = await generateWorkloadKey();
  const { certPem } = await authority.signWorkload(csrPem, `spiffe://${authority.trustDomain}/service/${service}`, HOUR);
  return { key: keyPem, cert: certPem };
}

type ServerOutcome =
  | { kind: 'accepted'; peerRaw: Buffer; authorized: boolean; authorizationError?: string }
  | { kind: 'refused'; error: Error & { code?: string } };

/**
 * Starts an mTLS server on 127.0.0.1:0 that reports the outcome of the first handshake.
 * With rejectUnauthorized (the real setting) node destroys a refused socket without saying why
 * (the server sees ECONNRESET); `diagnose` turns it off so a test can read authorizationError.
 */
async function startServer(maxVersion: tls.SecureVersion = 'TLSv1.3', diagnose = false): Promise<{ port: number; outcome: Promise<ServerOutcome>; close: () => Promise<void> }> {
  const server = tls.createServer({
    key: serving.keyPem,
    cert: serving.certPem,
    ca: [root.certPem],
    requestCert: true,
    rejectUnauthorized: !diagnose,
    minVersion: 'TLSv1.2',
    maxVersion,
  });
  const outcome = new Promise<ServerOutcome>((resolve) => {
    server.once('secureConnection', (socket) => {
      const authorizationError = socket.authorizationError === undefined ? undefined : String(socket.authorizationError);
      resolve({ kind: 'accepted', peerRaw: socket.getPeerCertificate().raw, authorized: socket.authorized, ...(authorizationError ? { authorizationError } : {}) });
      socket.end('hello');
    });
    server.once('tlsClientError', (error, socket) => {
      socket.destroy();
      resolve({ kind: 'refused', error });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    outcome,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Why node's verifier refuses a client certificate (diagnostic server, rejectUnauthorized: false). */
async function authorizationErrorFor(client: { key: string; cert: string }): Promise<string | undefined> {
  const srv = await startServer('TLSv1.3', true);
  closers.push(srv.close);
  await connect(srv.port, client);
  const outcome = await srv.outcome;
  assert.equal(outcome.kind, 'accepted');
  return outcome.kind === 'accepted' ? outcome.authorizationError : undefined;
}

/** Connects with a client certificate; resolves when the socket is closed, with what the client saw. */
function connect(port: number, client: { key: string; cert: string }, maxVersion: tls.SecureVersion = 'TLSv1.3'): Promise<{ secure: boolean; authorized: boolean; serverRaw?: Buffer; data: string; error?: Error }> {
  return new Promise((resolve) => {
    const result: { secure: boolean; authorized: boolean; serverRaw?: Buffer; data: string; error?: Error } = { secure: false, authorized: false, data: '' };
    const socket = tls.connect({ host: '127.0.0.1', port, key: client.key, cert: client.cert, ca: [root.certPem], minVersion: 'TLSv1.2', maxVersion });
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => {
      result.secure = true;
      result.authorized = socket.authorized;
      result.serverRaw = socket.getPeerCertificate().raw;
    });
    socket.on('data', (chunk: string) => { result.data += chunk; });
    socket.on('error', (error) => { result.error = error; });
    socket.on('close', () => resolve(result));
  });
}

const closers: Array<() => Promise<void>> = [];
after(async () => { await Promise.all(closers.map((c) => c())); });

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  test(`mTLS (${version}): a workload certificate from the same CA is accepted and identified`, async () => {
    const srv = await startServer(version);
    closers.push(srv.close);
    const client = await connect(srv.port, await workloadCert(ca, 'orders'), version);
    const outcome = await srv.outcome;

    assert.equal(outcome.kind, 'accepted');
    assert.ok(outcome.kind === 'accepted' && outcome.authorized);
    assert.deepEqual(checkPeerCertificate(outcome.peerRaw, TD), { ok: true, spiffeId: `spiffe://${TD}/service/orders`, trustDomain: TD, service: 'orders' });
    // The client verified the serving certificate (chain + IP SAN) and can identify the server too.
    assert.equal(client.error, undefined);
    assert.ok(client.secure && client.authorized);
    assert.equal(client.data, 'hello');
    const serverCert = new x509.X509Certificate(new Uint8Array(client.serverRaw!));
    const serverUris = serverCert.getExtension(x509.SubjectAlternativeNameExtension)!.names.items.filter((n) => n.type === 'url').map((n) => n.value);
    assert.deepEqual(serverUris, [`spiffe://${TD}/control-plane`]);
  });
}

test('mTLS: a client certificate from a foreign CA (same trust domain name) is refused by the handshake', async () => {
  const foreign = await CertificateAuthority.load(await foreignCa(TD), TD);
  const srv = await startServer();
  closers.push(srv.close);
  const foreignCert = await workloadCert(foreign, 'orders');
  const client = await connect(srv.port, foreignCert);
  const outcome = await srv.outcome;
  assert.equal(outcome.kind, 'refused');
  assert.equal(client.data, '');
  assert.match(String(await authorizationErrorFor(foreignCert)), /ISSUER|SIGNATURE/);
});

test('mTLS: an expired client certificate signed by the real CA is refused by the handshake', async () => {
  const expired = await forgeCertificate({
    issuer: root,
    uris: [`spiffe://${TD}/service/orders`],
    notBefore: new Date(Date.now() - 2 * HOUR),
    notAfter: new Date(Date.now() - HOUR),
  });
  const srv = await startServer();
  closers.push(srv.close);
  const client = await connect(srv.port, { key: expired.keyPem, cert: expired.certPem });
  const outcome = await srv.outcome;
  assert.equal(outcome.kind, 'refused');
  assert.equal(client.data, '');
  assert.equal(await authorizationErrorFor({ key: expired.keyPem, cert: expired.certPem }), 'CERT_HAS_EXPIRED');
});

test('mTLS: a control case — the forged-certificate helper itself yields certificates TLS accepts', async () => {
  const good = await forgeCertificate({ issuer: root, uris: [`spiffe://${TD}/service/orders`] });
  const srv = await startServer();
  closers.push(srv.close);
  const client = await connect(srv.port, { key: good.keyPem, cert: good.certPem });
  const outcome = await srv.outcome;
  assert.equal(outcome.kind, 'accepted');
  assert.equal(client.data, 'hello');
});
