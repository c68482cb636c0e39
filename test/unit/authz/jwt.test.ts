import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload, type CryptoKey } from 'jose';
import { JWTAuthenticationSpec } from '../../../src/api/schema/resources.js';
import { checkClaimsUnverified, compileJwtAuthenticator, JwtError, loadJwtVerification, type JwtPolicy } from '../../../src/proxy/authz/jwt.js';
import { JwtAuthenticationFilter } from '../../../src/proxy/filters/jwt-authentication.js';
import { meshRequest, response } from '../filters/helpers.js';

const ISS = 'https://issuer.test';

interface Key { kid: string; alg: 'RS256' | 'ES256'; privateKey: CryptoKey; jwk: JWK }
async function key(kid: string, alg: 'RS256' | 'ES256'): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

async function sign(k: Key, claims: JWTPayload = {}, opts: { iss?: string; aud?: string; exp?: number; nbf?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ sub: 'alice', ...claims }).setProtectedHeader({ alg: k.alg, kid: k.kid })
    .setIssuer(opts.iss ?? ISS).setAudience(opts.aud ?? 'backend').setIssuedAt(now).setExpirationTime(opts.exp ?? now + 600);
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  return jwt.sign(k.privateKey);
}

function policy(name: string, spec: Record<string, unknown>): JwtPolicy {
  return {
    apiVersion: 'trellis.dev/v1alpha1', kind: 'JWTAuthentication', metadata: { name },
    spec: JWTAuthenticationSpec.parse({ targetRef: { name: 'backend' }, issuer: ISS, audiences: ['backend'], ...spec }),
  } as JwtPolicy;
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

async function rejects(p: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof JwtError, String(err));
    assert.equal(err.code, 'UNAUTHENTICATED');
    assert.equal(err.status, 401);
    assert.equal(err.reason, reason, err.message);
    return true;
  });
}

describe('JWT verification', () => {
  let rsa: Key;
  let ec: Key;
  let other: Key;
  before(async () => {
    await loadJwtVerification(); // what the proxy does when a config with a JWTAuthentication arrives (runtime/optional-modules.ts)
    rsa = await key('rsa-1', 'RS256');
    ec = await key('ec-1', 'ES256');
    other = await key('rsa-1', 'RS256'); // same kid, different key: a forged signature
  });

  const inline = () => policy('inline', { jwks: { inline: JSON.stringify({ keys: [rsa.jwk, ec.jwk] }) } });

  it('verifies RS256 and ES256 tokens against an inline JWKS and returns the claims', async () => {
    const auth = compileJwtAuthenticator('backend', [inline()])!;
    for (const k of [rsa, ec]) {
      const res = await auth.authenticate(`Bearer ${await sign(k, { role: 'admin' })}`);
      assert.equal(res.claims?.role, 'admin');
      assert.equal(res.claims?.sub, 'alice');
      assert.equal(res.policy, 'inline');
    }
  });

  it('refuses expired, not-yet-valid, wrong audience, wrong issuer, bad signature and alg none', async () => {
    const auth = compileJwtAuthenticator('backend', [inline()])!;
    const now = Math.floor(Date.now() / 1000);
    await rejects(auth.authenticate(`Bearer ${await sign(rsa, {}, { exp: now - 3600 })}`), 'expired');
    await rejects(auth.authenticate(`Bearer ${await sign(rsa, {}, { nbf: now + 3600 })}`), 'not_yet_valid');
    await rejects(auth.authenticate(`Bearer ${await sign(rsa, {}, { aud: 'someone-else' })}`), 'audience');
    await rejects(auth.authenticate(`Bearer ${await sign(rsa, {}, { iss: 'https://evil.test' })}`), 'issuer');
    await rejects(auth.authenticate(`Bearer ${await sign(other)}`), 'signature');
    const good = await sign(rsa);
    const [h, p] = good.split('.');
    await rejects(auth.authenticate(`Bearer ${h}.${p}.${Buffer.from('tampered').toString('base64url')}`), 'signature');
    const tamperedPayload = b64({ sub: 'mallory', iss: ISS, aud: 'backend', exp: now + 600 });
    await rejects(auth.authenticate(`Bearer ${h}.${tamperedPayload}.${good.split('.')[2]}`), 'signature');
    // alg none, crafted by hand: refused whatever the signature part.
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'mallory', iss: ISS, aud: 'backend', exp: now + 600 })}.`;
    await rejects(auth.authenticate(`Bearer ${none}`), 'algorithm');
    // HS256 with the public key as secret (algorithm confusion): refused.
    const hs = `${b64({ alg: 'HS256', typ: 'JWT', kid: 'rsa-1' })}.${b64({ iss: ISS, aud: 'backend', exp: now + 600 })}.AAAA`;
    await rejects(auth.authenticate(`Bearer ${hs}`), 'algorithm');
    await rejects(auth.authenticate('Bearer not.a.jwt'), 'malformed');
    await rejects(auth.authenticate('Bearer garbage'), 'malformed');
  });

  it('missing token: 401 when required, else no claims; other schemes count as no token', async () => {
    const required = compileJwtAuthenticator('backend', [inline()])!;
    assert.equal(required.required, true);
    await rejects(required.authenticate(undefined), 'missing');
    await rejects(required.authenticate('Basic YWxpY2U6eA=='), 'missing');
    const optional = compileJwtAuthenticator('backend', [policy('opt', { required: false, jwks: { inline: JSON.stringify({ keys: [rsa.jwk] }) } })])!;
    assert.deepEqual(await optional.authenticate(undefined), {});
    // A bad token is refused even when not required.
    await rejects(optional.authenticate(`Bearer ${await sign(other)}`), 'signature');
  });

  it('no policy for the service → no authenticator; a bad inline JWKS throws at build (NACK)', () => {
    assert.equal(compileJwtAuthenticator('payments', [inline()]), null);
    assert.throws(() => compileJwtAuthenticator('backend', [policy('bad', { jwks: { inline: '{not json' } })]), /not JSON/);
    assert.throws(() => compileJwtAuthenticator('backend', [policy('bad', { jwks: { inline: '{"nokeys":1}' } })]), /JWK Set/);
  });

  describe('JWKS URI', () => {
    let server: http.Server;
    let keys: JWK[] = [];
    let fetches = 0;
    let uri = '';
    before(async () => {
      server = http.createServer((_req, res) => {
        fetches++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys }));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    it('fetches, caches, and follows a kid rotation', async () => {
      const k1 = await key('k1', 'ES256');
      const k2 = await key('k2', 'RS256');
      keys = [k1.jwk];
      const auth = compileJwtAuthenticator('backend', [policy('remote', { jwks: { uri } })], { jwksCooldownMs: 0 })!;
      assert.equal((await auth.authenticate(`Bearer ${await sign(k1, { n: 1 })}`)).claims?.n, 1);
      assert.equal((await auth.authenticate(`Bearer ${await sign(k1, { n: 2 })}`)).claims?.n, 2);
      assert.equal(fetches, 1, 'the key set is cached');
      // Rotation: the issuer now publishes k2 only; a token signed with the new kid triggers a refetch.
      keys = [k2.jwk];
      assert.equal((await auth.authenticate(`Bearer ${await sign(k2, { n: 3 })}`)).claims?.n, 3);
      assert.equal(fetches, 2);
      // The retired key is gone.
      await rejects(auth.authenticate(`Bearer ${await sign(k1)}`), 'no_matching_key');
    });

    it('an unreachable JWKS is a 401, not a crash', async () => {
      const k = await key('k9', 'ES256');
      const auth = compileJwtAuthenticator('backend', [policy('down', { jwks: { uri: 'http://127.0.0.1:1/jwks.json' } })], { jwksCooldownMs: 0 })!;
      await rejects(auth.authenticate(`Bearer ${await sign(k)}`), 'jwks_unavailable');
    });
  });

  it('the filter puts verified claims on req.attrs and keeps the Authorization header', async () => {
    const filter = new JwtAuthenticationFilter(compileJwtAuthenticator('backend', [inline()])!);
    const token = await sign(ec, { role: 'admin' });
    const req = meshRequest({ direction: 'inbound', headers: { authorization: `Bearer ${token}` } });
    let seen: unknown;
    const res = await filter.handle(req, async (r) => { seen = r.attrs.jwtClaims; return response(200); });
    assert.equal(res.status, 200);
    assert.equal((seen as JWTPayload).role, 'admin');
    assert.equal(req.headers.authorization, `Bearer ${token}`);
    let called = false;
    await assert.rejects(filter.handle(meshRequest({ direction: 'inbound' }), async () => { called = true; return response(200); }), /bearer token is required/);
    assert.equal(called, false);
  });

  it('can-i checks (unverified): issuer, audience, exp, nbf, presence, algorithm', async () => {
    const pols = [inline()];
    const now = Math.floor(Date.now() / 1000);
    assert.equal(checkClaimsUnverified('backend', pols, await sign(rsa, { role: 'x' })).claims?.role, 'x');
    assert.equal(checkClaimsUnverified('backend', pols, undefined).failure?.reason, 'missing');
    assert.equal(checkClaimsUnverified('backend', pols, await sign(rsa, {}, { exp: now - 3600 })).failure?.reason, 'expired');
    assert.equal(checkClaimsUnverified('backend', pols, await sign(rsa, {}, { nbf: now + 3600 })).failure?.reason, 'not_yet_valid');
    assert.equal(checkClaimsUnverified('backend', pols, await sign(rsa, {}, { aud: 'x' })).failure?.reason, 'audience');
    assert.equal(checkClaimsUnverified('backend', pols, await sign(rsa, {}, { iss: 'x' })).failure?.reason, 'issuer');
    assert.equal(checkClaimsUnverified('backend', pols, `${b64({ alg: 'none' })}.${b64({ iss: ISS })}.`).failure?.reason, 'algorithm');
    assert.deepEqual(checkClaimsUnverified('payments', pols, undefined), {});
  });
});
