/**
 * The inbound listener admits only peers with a valid SVID of this mesh, and certificates rotate
 * without dropping connections.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import http from 'node:http';
import net from 'node:net';
import { createRootCa, type CaMaterial } from '../../../src/pki/ca.js';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { foreignCa, forgeCertificate } from '../../helpers/certs.js';
import { client, eventually, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

function tryHandshake(address: string, opts: tls.ConnectionOptions): Promise<{ ok: boolean; error?: string }> {
  const [host, port] = address.split(':');
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port: Number(port), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...opts });
    socket.on('secureConnect', () => {
      // TLS 1.3: the server judges the client certificate after the client's Finished; a refusal
      // arrives as an alert/close. Send a request and see whether anything answers.
      socket.write('GET /probe HTTP/1.1\r\nhost: server\r\n\r\n');
    });
    socket.on('data', (d) => { socket.destroy(); resolve({ ok: d.toString().startsWith('HTTP/1.1 200'), error: d.toString().split('\r\n')[0] }); });
    socket.on('error', (err) => resolve({ ok: false, error: err.message }));
    socket.on('close', () => resolve({ ok: false, error: 'closed' }));
  });
}

describe('mTLS at the inbound listener', () => {
  let ca: CaMaterial;
  let server: MeshProxy;
  let serverApp: TestApp;
  let callerApp: TestApp;
  let caller: MeshProxy;

  before(async () => {
    ca = await createRootCa('trellis.local');
    const dir = await mkdtemp(join(tmpdir(), 'trellis-ca-'));
    await writeFile(join(dir, 'ca.crt'), ca.certPem);
    await writeFile(join(dir, 'ca.key'), ca.keyPem, { mode: 0o600 });
    const cp = await startControlPlane(['--ca-cert', join(dir, 'ca.crt'), '--ca-key', join(dir, 'ca.key')]);
    await client(cp).apply([{ apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { certificateTTL: '6s' } }]);
    serverApp = await startHttpApp('server');
    callerApp = await startHttpApp('caller');
    server = await startMeshProxy(cp, { service: 'server', app: serverApp.address });
    caller = await startMeshProxy(cp, { service: 'caller', app: callerApp.address, outbound: ['server'] });
    await waitForEndpoints(caller, 'server', 1);
  });

  after(async () => {
    await stopAll();
    await serverApp.close();
    await callerApp.close();
  });

  it('admits a certificate of this mesh and sets the peer identity from it', async () => {
    const good = await forgeCertificate({ issuer: ca, uris: ['spiffe://trellis.local/service/tester'] });
    const result = await tryHandshake(server.inbound, { key: good.keyPem, cert: good.certPem, ca: ca.certPem });
    assert.equal(result.ok, true, result.error);
    assert.equal(serverApp.seen.at(-1)?.headers['x-trellis-peer'], 'spiffe://trellis.local/service/tester');
  });

  it('refuses a client without certificate, from another CA, expired, or with two identities', async () => {
    const before = serverApp.seen.length;
    const other = await foreignCa();
    const foreign = await forgeCertificate({ issuer: other, uris: ['spiffe://trellis.local/service/tester'] });
    const expired = await forgeCertificate({ issuer: ca, uris: ['spiffe://trellis.local/service/tester'], notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
    const twoIds = await forgeCertificate({ issuer: ca, uris: ['spiffe://trellis.local/service/a', 'spiffe://trellis.local/service/b'] });
    const otherDomain = await forgeCertificate({ issuer: ca, uris: ['spiffe://evil.example/service/tester'] });
    const attempts: Array<[string, tls.ConnectionOptions]> = [
      ['no certificate', {}],
      ['foreign CA', { key: foreign.keyPem, cert: foreign.certPem }],
      ['expired', { key: expired.keyPem, cert: expired.certPem }],
      ['two URI SANs', { key: twoIds.keyPem, cert: twoIds.certPem }],
      ['other trust domain', { key: otherDomain.keyPem, cert: otherDomain.certPem }],
    ];
    for (const [what, opts] of attempts) {
      const result = await tryHandshake(server.inbound, opts);
      assert.equal(result.ok, false, `${what} must be refused`);
    }
    assert.equal(serverApp.seen.length, before, 'nothing reached the app');
  });

  it('refuses plaintext on the inbound port (mtls STRICT, the default): HTTP/1.1 and h2c get no answer', async () => {
    const [host, port] = server.inbound.split(':');
    const before = serverApp.seen.length;
    const status = await new Promise<string>((resolve) => {
      const req = http.get({ host, port: Number(port), path: '/' }, (res) => resolve(String(res.statusCode)));
      req.on('error', (err) => resolve(err.message));
    });
    assert.doesNotMatch(status, /^\d{3}$/, 'no HTTP status at all: the connection fails in the TLS handshake');
    // The HTTP/2 preface (prior knowledge, as a plaintext gRPC client sends it): not one byte back either.
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      const socket = net.connect(Number(port), host, () => socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'));
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => { got += d; });
      socket.on('error', () => {});
      socket.on('close', () => resolve(got));
    });
    assert.doesNotMatch(answer, /HTTP|^\x00/, 'neither an HTTP/1.1 answer nor an HTTP/2 frame');
    assert.equal(serverApp.seen.length, before, 'nothing reached the app');
  });

  it('renews certificates before expiry without dropping connections', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const notAfter = async (p: MeshProxy) => ((await (await fetch(`http://${p.admin}/config`)).json()) as { certificateNotAfter: string }).certificateNotAfter;
    const first = await notAfter(caller);
    const get = () => new Promise<number>((resolve, reject) => {
      const [host, port] = caller.outbound.server!.split(':');
      http.get({ host, port: Number(port), path: '/rotate', agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); }).on('error', reject);
    });
    assert.equal(await get(), 200);
    await eventually(async () => (await notAfter(caller)) !== first && (await notAfter(server)) !== first, 15_000, 'both certificates to rotate');
    // Keep sending past the first certificate's expiry on the same connections.
    const expiry = new Date(first).getTime();
    let n = 0;
    while (Date.now() < expiry + 1000 && n++ < 500) assert.equal(await get(), 200);
    assert.equal(await get(), 200);
    agent.destroy();
    // A fresh connection after the old certificate expired works too.
    assert.equal((await httpGet(caller.outbound.server!, '/fresh')).status, 200);
  });
});
