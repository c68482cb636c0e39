import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT, generateKeyPair } from 'jose';
import { TokenService, decodeJoinToken, TOKEN_KEY_BLOB } from '../../../src/control-plane/core/tokens.js';
import { openStore } from './fixtures.js';

const ctx = { trustDomain: 'trellis.local', pin: 'sha256:' + 'ab'.repeat(32), controlPlaneAddress: () => '127.0.0.1:15010' };

describe('join tokens', () => {
  it('creates a token carrying svc, cp, pin, td, iat, exp, jti that verifies', async () => {
    const tokens = await TokenService.init(await openStore(), ctx);
    const issued = await tokens.create('web', '1h');
    const claims = decodeJoinToken(issued.token);
    assert.equal(claims.svc, 'web');
    assert.equal(claims.cp, '127.0.0.1:15010');
    assert.equal(claims.pin, ctx.pin);
    assert.equal(claims.td, 'trellis.local');
    assert.equal(claims.exp - claims.iat, 3600);
    assert.match(claims.jti, /^[0-9a-f-]{36}$/);
    assert.equal(issued.expiresAt.getTime(), claims.exp * 1000);
    assert.equal((await tokens.verify(issued.token)).service, 'web');
  });

  it('defaults to a 24h TTL', async () => {
    const tokens = await TokenService.init(await openStore(), ctx);
    const claims = decodeJoinToken((await tokens.create('web')).token);
    assert.equal(claims.exp - claims.iat, 24 * 3600);
  });

  it('keeps its signing key in the store: a reopened service verifies old tokens', async () => {
    const store = await openStore();
    const first = await TokenService.init(store, ctx);
    const { token } = await first.create('web');
    assert.ok(await store.getBlob(TOKEN_KEY_BLOB));
    const second = await TokenService.init(store, ctx);
    assert.equal((await second.verify(token)).service, 'web');
  });

  it('refuses an expired token', async () => {
    let now = Date.now();
    const tokens = await TokenService.init(await openStore(), ctx, { now: () => now });
    const { token } = await tokens.create('web', '1m');
    now += 2 * 60_000;
    await assert.rejects(tokens.verify(token), { message: 'token expired' });
  });

  it('refuses a forged token (claims changed after signing)', async () => {
    const tokens = await TokenService.init(await openStore(), ctx);
    const { token } = await tokens.create('web');
    const [h, p, s] = token.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    payload.svc = 'admin';
    const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
    await assert.rejects(tokens.verify(forged), { message: 'token signature invalid' });
  });

  it('refuses a token signed by another key', async () => {
    const ours = await TokenService.init(await openStore(), ctx);
    const theirs = await TokenService.init(await openStore(), ctx);
    const { token } = await theirs.create('web');
    await assert.rejects(ours.verify(token), { message: 'token signature invalid' });
  });

  it('refuses a token with another algorithm or type', async () => {
    const tokens = await TokenService.init(await openStore(), ctx);
    const { privateKey } = await generateKeyPair('ES384');
    const other = await new SignJWT({ svc: 'web', td: 'trellis.local' }).setProtectedHeader({ alg: 'ES384', typ: 'trellis-join+jwt' })
      .setIssuedAt().setExpirationTime('1h').sign(privateKey);
    await assert.rejects(tokens.verify(other), /malformed token/);
  });

  it('refuses garbage as malformed', async () => {
    const tokens = await TokenService.init(await openStore(), ctx);
    await assert.rejects(tokens.verify('not-a-token'), { message: 'malformed token' });
    await assert.rejects(tokens.verify('a.b.c'), /malformed token/);
  });

  it('refuses a token of another trust domain', async () => {
    const store = await openStore();
    const other = await TokenService.init(store, { ...ctx, trustDomain: 'other.local' });
    const tokens = await TokenService.init(store, ctx);
    const { token } = await other.create('web');
    await assert.rejects(tokens.verify(token), /trust domain other\.local/);
  });
});
