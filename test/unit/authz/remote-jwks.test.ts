import { after, before, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, exportJWK, generateKeyPair, type JWK } from 'jose';
import { createRemoteKeySet, fetchJsonOverPool, type JsonFetcher } from '../../../src/proxy/authz/remote-jwks.js';

async function jwk(kid: string): Promise<JWK> {
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
}
const header = (kid: string) => ({ alg: 'ES256', kid });
const token = { payload: new Uint8Array(), signature: new Uint8Array() } as never;

describe('remote JWKS key set', () => {
  let k1: JWK;
  let k2: JWK;
  before(async () => { k1 = await jwk('k1'); k2 = await jwk('k2'); });

  /** A fetcher serving `keys` (changeable), counting calls. */
  function fetcher(): { fetch: JsonFetcher; keys: JWK[]; calls: () => number } {
    const state = { keys: [] as JWK[], n: 0 };
    return {
      fetch: async () => { state.n++; return { keys: state.keys }; },
      get keys() { return state.keys; },
      set keys(v: JWK[]) { state.keys = v; },
      calls: () => state.n,
    };
  }

  /** Runs `fn` on a fresh fetcher serving k1 and a key set over it (cooldown 30 s, max age 10 min), with a fake Date. */
  async function withFakeDate(fn: (f: ReturnType<typeof fetcher>, set: ReturnType<typeof createRemoteKeySet>) => Promise<void>): Promise<void> {
    mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    try {
      const f = fetcher();
      f.keys = [k1];
      await fn(f, createRemoteKeySet(new URL('http://127.0.0.1/jwks'), createLocalJWKSet, { cooldownMs: 30_000, maxAgeMs: 600_000, timeoutMs: 5_000 }, f.fetch));
    } finally { mock.timers.reset(); }
  }

  it('fetches once, keeps the set for maxAge, then fetches again', () => withFakeDate(async (f, set) => {
      await set(header('k1'), token);
      await set(header('k1'), token);
      assert.equal(f.calls(), 1);
      mock.timers.tick(599_999);
      await set(header('k1'), token);
      assert.equal(f.calls(), 1, 'still fresh');
      mock.timers.tick(2);
      await set(header('k1'), token);
      assert.equal(f.calls(), 2, 'refetched after maxAge');
  }));

  it('an unknown kid refetches, but at most once per cooldown', () => withFakeDate(async (f, set) => {
      await set(header('k1'), token);
      f.keys = [k2];
      await assert.rejects(set(header('k2'), token), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
      assert.equal(f.calls(), 1, 'within the cooldown: no refetch');
      mock.timers.tick(30_001);
      await set(header('k2'), token);
      assert.equal(f.calls(), 2, 'after the cooldown the rotation is picked up');
      await assert.rejects(set(header('k1'), token), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
  }));

  it('concurrent lookups share one fetch; a failed fetch is ERR_JWKS_TIMEOUT and the next lookup retries', async () => {
    let calls = 0;
    let fail = true;
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const fetch: JsonFetcher = async () => {
      calls++;
      await gate;
      if (fail) throw new Error('connect ECONNREFUSED');
      return { keys: [k1] };
    };
    const set = createRemoteKeySet(new URL('http://127.0.0.1/jwks'), createLocalJWKSet, { cooldownMs: 0, maxAgeMs: 600_000, timeoutMs: 5_000 }, fetch);
    const both = [set(header('k1'), token), set(header('k1'), token)];
    release();
    for (const p of both) await assert.rejects(p, (err: Error & { code?: string }) => err.code === 'ERR_JWKS_TIMEOUT' && /ECONNREFUSED/.test(err.message));
    assert.equal(calls, 1);
    fail = false;
    await set(header('k1'), token);
    assert.equal(calls, 2);
  });

  it('a body that is not a JWK Set is ERR_JWKS_INVALID', async () => {
    const set = createRemoteKeySet(new URL('http://127.0.0.1/jwks'), createLocalJWKSet, { cooldownMs: 0, maxAgeMs: 1, timeoutMs: 5_000 }, async () => ({ nokeys: 1 }));
    await assert.rejects(set(header('k1'), token), { code: 'ERR_JWKS_INVALID' });
  });

  describe('over the undici pool', () => {
    let server: http.Server;
    let base = '';
    before(async () => {
      server = http.createServer((req, res) => {
        if (req.url === '/jwks') { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ keys: [k1], accept: req.headers.accept })); return; }
        if (req.url === '/big') { res.writeHead(200); res.end(Buffer.alloc(2048, 0x20)); return; }
        if (req.url === '/redirect') { res.writeHead(302, { location: '/jwks' }); res.end(); return; }
        if (req.url === '/silent') return; // never answers
        res.writeHead(404); res.end();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => { server.closeAllConnections(); return new Promise<void>((r) => server.close(() => r())); });

    it('GETs the JSON with a JWKS accept header', async () => {
      const json = await fetchJsonOverPool(new URL(`${base}/jwks`), 5_000, 64 * 1024) as { keys: JWK[]; accept: string };
      assert.equal(json.keys[0]!.kid, 'k1');
      assert.match(json.accept, /application\/jwk-set\+json/);
    });

    it('refuses a body over the limit, a redirect, a non-200 and a silent server', async () => {
      await assert.rejects(fetchJsonOverPool(new URL(`${base}/big`), 5_000, 1024), /over 1024 bytes/);
      await assert.rejects(fetchJsonOverPool(new URL(`${base}/redirect`), 5_000, 1024), /302, expected 200/);
      await assert.rejects(fetchJsonOverPool(new URL(`${base}/missing`), 5_000, 1024), /404, expected 200/);
      await assert.rejects(fetchJsonOverPool(new URL(`${base}/silent`), 100, 1024), /no answer within 100ms/);
    });
  });
});
