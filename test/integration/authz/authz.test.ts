/**
 * Zero trust end to end with real processes: AuthorizationPolicy (DENY on a normalised path, ALLOW
 * by source service), JWTAuthentication with an inline JWKS and a `when` on its claims, and
 * `trellis can-i` agreeing with what the proxy did.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { runCli, startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { applyAndWait as applyResourcesAndWait, client, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

const API = 'trellis.dev/v1alpha1';
const ISS = 'https://issuer.test';

/** Sends a raw HTTP/1.1 request line, so paths like //admin or /admin#x reach the proxy byte for byte. */
function rawGet(address: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; error?: string; text: string }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host, () => {
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.write(`GET ${path} HTTP/1.1\r\nhost: backend\r\nconnection: close\r\n${extra}\r\n`);
    });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => { text += c; });
    socket.on('error', reject);
    socket.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const error = /\r\nx-trellis-error: ([A-Z_]+)/i.exec(text)?.[1];
      resolve({ status, ...(error ? { error } : {}), text });
    });
  });
}

describe('zero trust: authorization policies, JWT, can-i', () => {
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  const apps: TestApp[] = [];
  let backendApp: TestApp;
  let jwtApp: TestApp;
  let backend: MeshProxy;
  let jwtsvc: MeshProxy;
  let frontend: MeshProxy;
  let other: MeshProxy;
  let privateKey: CryptoKey;
  let jwks: string;

  const applyAndWait = (resources: Array<{ apiVersion: string; kind: string; metadata: { name: string }; spec: unknown }>) =>
    applyResourcesAndWait(cp, [backend, jwtsvc], resources);

  const token = (claims: Record<string, unknown>, opts: { exp?: number } = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(ISS).setAudience('jwtsvc')
      .setIssuedAt(now).setExpirationTime(opts.exp ?? now + 600).sign(privateKey);
  };

  before(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    jwks = JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] });
    cp = await startControlPlane();
    backendApp = await startHttpApp('backend');
    jwtApp = await startHttpApp('jwtsvc');
    apps.push(backendApp, jwtApp);
    backend = await startMeshProxy(cp, { service: 'backend', app: backendApp.address });
    jwtsvc = await startMeshProxy(cp, { service: 'jwtsvc', app: jwtApp.address });
    const feApp = await startHttpApp('frontend');
    const otherApp = await startHttpApp('other');
    apps.push(feApp, otherApp);
    frontend = await startMeshProxy(cp, { service: 'frontend', app: feApp.address, outbound: ['backend', 'jwtsvc'] });
    other = await startMeshProxy(cp, { service: 'other', app: otherApp.address, outbound: ['backend'] });
    await waitForEndpoints(frontend, 'backend', 1);
    await waitForEndpoints(frontend, 'jwtsvc', 1);
    await waitForEndpoints(other, 'backend', 1);
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('a DENY /admin/* policy blocks /admin/x and every normalisation trick with 403; the app sees none of them', async () => {
    await applyAndWait([{
      apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name: 'deny-admin' },
      spec: { targetRef: { name: 'backend' }, action: 'DENY', rules: [{ to: [{ paths: ['/admin/*'] }] }] },
    }]);
    backendApp.seen.length = 0;
    const vectors = [
      '/admin/x', '/admin', '/public/../admin', '/public/%2e%2e/admin', '//admin', '/admin;x=1', '/%61dmin', '/admin#x',
      '/public/../admin/x', '/public/%2e%2e/admin/x', '//admin//x', '/admin;x=1/x', '/%61dmin/x', '/admin/x#y', '/public/..;/admin/x',
    ];
    for (const path of vectors) {
      const res = await rawGet(frontend.outbound.backend!, path);
      assert.equal(res.status, 403, `${path}: ${res.text}`);
      assert.equal(res.error, 'FORBIDDEN', path);
      assert.match(res.text, /deny-admin/, path);
    }
    assert.deepEqual(backendApp.seen.map((s) => s.path), [], 'the app saw none of the denied requests');
    const ok = await httpGet(frontend.outbound.backend!, '/public/x?q=%2e%2e');
    assert.equal(ok.status, 200);
    assert.equal(ok.json().path, '/public/x?q=%2e%2e');
    const normalised = await rawGet(frontend.outbound.backend!, '/public/./y/../x;p=1');
    assert.equal(normalised.status, 200);
    assert.deepEqual(backendApp.seen.map((s) => s.path), ['/public/x?q=%2e%2e', '/public/x'], 'the app receives the normalised path');
    const above = await rawGet(frontend.outbound.backend!, '/../admin');
    assert.equal(above.status, 400);
    assert.equal(above.error, 'BAD_REQUEST');
  });

  it('an ALLOW policy for frontend lets frontend in and refuses another service', async () => {
    await applyAndWait([{
      apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name: 'allow-frontend' },
      spec: { targetRef: { name: 'backend' }, action: 'ALLOW', rules: [{ from: [{ services: ['frontend'] }] }] },
    }]);
    const seenBefore = backendApp.seen.length;
    assert.equal((await httpGet(frontend.outbound.backend!, '/public/x')).status, 200);
    const refused = await httpGet(other.outbound.backend!, '/public/x', { 'x-trellis-peer': 'spiffe://trellis.local/service/frontend' });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers['x-trellis-error'], 'FORBIDDEN');
    assert.equal(refused.json().error, 'FORBIDDEN');
    assert.equal(backendApp.seen.length, seenBefore + 1, 'only the frontend request reached the app');
    // DENY still wins for frontend.
    assert.equal((await httpGet(frontend.outbound.backend!, '/admin/x')).status, 403);
    const metrics = await (await fetch(`http://${backend.admin}/metrics`)).text();
    assert.match(metrics, /trellis_authz_decisions_total\{[^}]*policy="deny-admin"[^}]*action="DENY"[^}]*decision="deny"/);
    assert.match(metrics, /trellis_authz_decisions_total\{[^}]*policy="-"[^}]*action="NO_ALLOW_MATCH"[^}]*decision="deny"/);
  });

  it('JWTAuthentication (inline JWKS) and a when on jwt.claims', async () => {
    await applyAndWait([
      {
        apiVersion: API, kind: 'JWTAuthentication', metadata: { name: 'issuer' },
        spec: { targetRef: { name: 'jwtsvc' }, issuer: ISS, audiences: ['jwtsvc'], jwks: { inline: jwks }, required: false },
      },
      {
        apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name: 'admins-only' },
        spec: { targetRef: { name: 'jwtsvc' }, action: 'ALLOW', rules: [{ when: [{ key: 'jwt.claims.roles', values: ['admin'] }] }] },
      },
    ]);
    const call = async (auth?: string) => httpGet(frontend.outbound.jwtsvc!, '/data', auth ? { authorization: auth } : {});
    const admin = await call(`Bearer ${await token({ roles: ['user', 'admin'] })}`);
    assert.equal(admin.status, 200);
    assert.match(admin.json().headers.authorization, /^Bearer /, 'the token reaches the app');
    const user = await call(`Bearer ${await token({ roles: ['user'] })}`);
    assert.equal(user.status, 403);
    assert.equal(user.headers['x-trellis-error'], 'FORBIDDEN');
    assert.equal((await call()).status, 403, 'no token (not required): no claims, so no ALLOW rule matches');
    const expired = await call(`Bearer ${await token({ roles: ['admin'] }, { exp: Math.floor(Date.now() / 1000) - 3600 })}`);
    assert.equal(expired.status, 401);
    assert.equal(expired.headers['x-trellis-error'], 'UNAUTHENTICATED');
    const good = await token({ roles: ['admin'] });
    const forged = `${good.split('.')[0]}.${Buffer.from(JSON.stringify({ iss: ISS, aud: 'jwtsvc', roles: ['admin'], exp: 9999999999 })).toString('base64url')}.${good.split('.')[2]}`;
    assert.equal((await call(`Bearer ${forged}`)).status, 401);
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISS, aud: 'jwtsvc', roles: ['admin'] })).toString('base64url')}.`;
    assert.equal((await call(`Bearer ${none}`)).status, 401);
    const metrics = await (await fetch(`http://${jwtsvc.admin}/metrics`)).text();
    assert.match(metrics, /trellis_jwt_failures_total\{[^}]*reason="expired"/);
  });

  it('trellis can-i agrees with the proxies', async () => {
    const api = `http://${cp.api}`;
    const cases: Array<{ args: string[]; proxy: () => Promise<number>; allowed: boolean; policy?: RegExp }> = [
      { args: ['--from', 'frontend', '--to', 'backend', 'GET', '/public/x'], proxy: async () => (await httpGet(frontend.outbound.backend!, '/public/x')).status, allowed: true, policy: /allow-frontend/ },
      { args: ['--from', 'frontend', '--to', 'backend', 'GET', '/public/%2e%2e/admin'], proxy: async () => (await rawGet(frontend.outbound.backend!, '/public/%2e%2e/admin')).status, allowed: false, policy: /deny-admin/ },
      { args: ['--from', 'other', '--to', 'backend', 'GET', '/public/x'], proxy: async () => (await httpGet(other.outbound.backend!, '/public/x')).status, allowed: false, policy: /allow-frontend/ },
    ];
    const adminToken = await token({ roles: ['admin'] });
    const userToken = await token({ roles: ['user'] });
    for (const [tok, allowed] of [[adminToken, true], [userToken, false]] as const) {
      cases.push({
        args: ['--from', 'frontend', '--to', 'jwtsvc', 'GET', '/data', '--jwt', tok],
        proxy: async () => (await httpGet(frontend.outbound.jwtsvc!, '/data', { authorization: `Bearer ${tok}` })).status,
        allowed, policy: /admins-only/,
      });
    }
    for (const c of cases) {
      const res = await runCli(['can-i', ...c.args], { api });
      const status = await c.proxy();
      assert.equal(status === 200, c.allowed, `proxy for ${c.args.join(' ')}: ${status}`);
      assert.equal(res.code, c.allowed ? 0 : 1, `can-i ${c.args.join(' ')}:\n${res.stdout}${res.stderr}`);
      assert.equal(res.stdout.split('\n')[0], c.allowed ? 'allowed' : 'denied');
      if (c.policy) assert.match(res.stdout, c.policy);
    }
    const json = await runCli(['can-i', '--from', 'frontend', '--to', 'jwtsvc', 'GET', '/data', '--jwt', adminToken, '-o', 'json'], { api });
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { allowed: boolean; policy: string; rule: number; notes: string[] };
    assert.equal(parsed.allowed, true);
    assert.equal(parsed.policy, 'admins-only');
    assert.equal(parsed.rule, 0);
    assert.ok(parsed.notes.some((n) => /not verified/.test(n)));
    const expired = await runCli(['can-i', '--from', 'frontend', '--to', 'jwtsvc', 'GET', '/data', '--jwt',
      await token({ roles: ['admin'] }, { exp: Math.floor(Date.now() / 1000) - 3600 })], { api });
    assert.equal(expired.code, 1);
    assert.match(expired.stdout, /401 UNAUTHENTICATED/);
  });

  it('JWTAuthentication with a JWKS URI: the proxy fetches the keys from the issuer', async () => {
    let fetches = 0;
    const issuer = http.createServer((req, res) => {
      fetches++;
      res.writeHead(req.url === '/jwks.json' ? 200 : 404, { 'content-type': 'application/json' });
      res.end(req.url === '/jwks.json' ? jwks : '{}');
    });
    await new Promise<void>((r) => issuer.listen(0, '127.0.0.1', r));
    try {
      const uri = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}/jwks.json`;
      await applyAndWait([{
        apiVersion: API, kind: 'JWTAuthentication', metadata: { name: 'issuer' },
        spec: { targetRef: { name: 'jwtsvc' }, issuer: ISS, audiences: ['jwtsvc'], jwks: { uri }, required: true },
      }]);
      const call = async (auth?: string) => httpGet(frontend.outbound.jwtsvc!, '/data', auth ? { authorization: auth } : {});
      assert.equal((await call(`Bearer ${await token({ roles: ['admin'] })}`)).status, 200);
      assert.equal((await call(`Bearer ${await token({ roles: ['admin'] })}`)).status, 200);
      assert.equal(fetches, 1, 'the key set is fetched once and cached');
      const missing = await call();
      assert.equal(missing.status, 401, 'required: no token is refused');
      assert.equal(missing.headers['x-trellis-error'], 'UNAUTHENTICATED');
    } finally {
      issuer.closeAllConnections();
      await new Promise<void>((r) => issuer.close(() => r()));
    }
  });
});
