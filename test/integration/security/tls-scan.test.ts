/**
 * The inbound mTLS listener as an outside scanner sees it: sslscan (Debian) lists the protocols and
 * suites (given a client certificate forged from the test's own CA, so TLS 1.2 suites can be
 * enumerated past the certificate request). Only TLS 1.2/1.3; for 1.2 only ECDHE + AEAD suites.
 * Node TLS clients confirm the refusals directly.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { stopAll } from '../../helpers/processes.js';
import { startHttpApp, type TestApp } from '../../helpers/apps.js';
import { forgeCertificate } from '../../helpers/certs.js';
import { startMeshProxy, type MeshProxy } from '../../helpers/mesh.js';
import { startControlPlaneWithOwnCa } from '../../helpers/hostile.js';

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

describe('TLS at the inbound listener', () => {
  let app: TestApp;
  let server: MeshProxy;
  let client: { certPem: string; keyPem: string };
  let caPem: string;
  let dir: string;

  before(async () => {
    const { cp, ca } = await startControlPlaneWithOwnCa();
    caPem = ca.certPem;
    app = await startHttpApp('server');
    server = await startMeshProxy(cp, { service: 'server', app: app.address });
    client = await forgeCertificate({ issuer: ca, uris: ['spiffe://trellis.local/service/scanner'] });
    dir = await mkdtemp(join(tmpdir(), 'trellis-scan-'));
    await writeFile(join(dir, 'client.crt'), client.certPem);
    await writeFile(join(dir, 'client.key'), client.keyPem, { mode: 0o600 });
  });

  after(async () => {
    await stopAll();
    await app.close();
  });

  it('sslscan: only TLS 1.2 and 1.3; TLS 1.2 suites are ECDHE + AEAD only', { timeout: 90_000 }, async (t) => {
    const { code, out } = await run('sslscan', [
      '--no-colour', '--no-fallback', '--no-renegotiation', '--no-compression', '--no-heartbleed',
      `--certs=${join(dir, 'client.crt')}`, `--pk=${join(dir, 'client.key')}`, server.inbound,
    ], 80_000);
    t.diagnostic(out.slice(out.indexOf('SSL/TLS Protocols'), out.indexOf('SSL Certificate')).trim());
    assert.equal(code, 0, out);
    for (const p of ['SSLv2', 'SSLv3', 'TLSv1.0', 'TLSv1.1']) assert.match(out, new RegExp(`^${p.replace('.', '\\.')}\\s+disabled`, 'm'), `${p} disabled`);
    for (const p of ['TLSv1.2', 'TLSv1.3']) assert.match(out, new RegExp(`^${p.replace('.', '\\.')}\\s+enabled`, 'm'), `${p} enabled`);
    const accepted = [...out.matchAll(/^(?:Preferred|Accepted)\s+(TLSv1\.[0-3]|SSLv\d)\s+\d+ bits\s+(\S+)/gm)].map((m) => ({ version: m[1]!, suite: m[2]! }));
    assert.ok(accepted.some((a) => a.version === 'TLSv1.3'), 'TLS 1.3 suites listed');
    const tls12 = accepted.filter((a) => a.version === 'TLSv1.2');
    // sslscan enumerates TLS 1.2 suites with full handshakes; the proxy closes a connection that
    // offers no ALPN right after it, so sslscan may list none: the Node clients below pin them down.
    if (tls12.length === 0) t.diagnostic('sslscan listed no TLS 1.2 suite (connections without ALPN are closed); see the next test');
    assert.deepEqual(accepted.filter((a) => a.version !== 'TLSv1.2' && a.version !== 'TLSv1.3'), []);
    for (const { suite } of tls12) {
      assert.match(suite, /^ECDHE-/, `${suite}: ECDHE key exchange`);
      assert.match(suite, /(GCM|CHACHA20-POLY1305)/, `${suite}: AEAD cipher`);
    }
  });

  /** Handshake outcome of a Node client with the given limits (the client certificate is valid). */
  function handshake(opts: tls.ConnectionOptions): Promise<{ ok: boolean; detail: string }> {
    const [host, port] = server.inbound.split(':');
    return new Promise((resolve) => {
      const s = tls.connect({ host, port: Number(port), key: client.keyPem, cert: client.certPem, ca: caPem, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...opts });
      s.setTimeout(5000, () => { s.destroy(); resolve({ ok: false, detail: 'timeout' }); });
      s.on('secureConnect', () => { const d = `${s.getProtocol()} ${s.getCipher().name}`; s.destroy(); resolve({ ok: true, detail: d }); });
      s.on('error', (err) => resolve({ ok: false, detail: err.message }));
    });
  }

  it('refuses TLS 1.0/1.1, non-ECDHE and non-AEAD TLS 1.2 suites; accepts TLS 1.3 and ECDHE-AEAD 1.2', async () => {
    const legacy = 'DEFAULT@SECLEVEL=0'; // let the client try what a weak client would
    for (const v of ['TLSv1', 'TLSv1.1'] as const) {
      const r = await handshake({ minVersion: v, maxVersion: v, ciphers: legacy });
      assert.equal(r.ok, false, `${v} must be refused (${r.detail})`);
    }
    for (const suite of ['AES128-GCM-SHA256', 'ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA', 'DHE-RSA-AES128-GCM-SHA256']) {
      const r = await handshake({ maxVersion: 'TLSv1.2', ciphers: `${suite}@SECLEVEL=0` });
      assert.equal(r.ok, false, `${suite} must be refused (${r.detail})`);
    }
    const v13 = await handshake({ minVersion: 'TLSv1.3' });
    assert.equal(v13.ok, true, v13.detail);
    const v12 = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    assert.equal(v12.ok, true, v12.detail);
  });
});
