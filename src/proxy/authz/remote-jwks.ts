/**
 * A JWKS fetched from `jwks.uri`: the same caching rules as jose's createRemoteJWKSet (fetched on first
 * use, kept for `maxAgeMs`, refetched when a token names an unknown `kid` unless the last fetch is
 * younger than `cooldownMs`; one fetch at a time), with the keys looked up by jose's createLocalJWKSet.
 *
 * Why not jose's remote set: it fetches with the global fetch and builds a global Headers, and either
 * loads Node's bundled copy of undici (+12 MiB for Headers alone, ≈ +40 MiB once a request is made).
 * Here the fetch goes through the undici Pool the proxy already loads (upstream/undici-pool.ts), and
 * the body is bounded.
 */
import type { createLocalJWKSet } from 'jose';
import { createPool, request, type Pool } from '../upstream/undici-pool.js';

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;
export type KeySet = LocalKeySet;

export interface RemoteJwksOptions {
  cooldownMs: number;
  maxAgeMs: number;
  /** A fetch that takes longer fails (the request gets 401, the next one tries again). */
  timeoutMs: number;
  /** Larger JWKS bodies are refused (default 512 KiB). */
  maxBytes?: number;
}

/** Fetches the JSON at `url`; throws unless the answer is 200 with a body within `maxBytes`. */
export type JsonFetcher = (url: URL, timeoutMs: number, maxBytes: number) => Promise<unknown>;

const DEFAULT_MAX_BYTES = 512 * 1024;

/** Raised by a failed fetch; jwt.ts maps this code to `jwks_unavailable`. */
export class JwksFetchError extends Error {
  readonly code = 'ERR_JWKS_TIMEOUT';
}

const pools = new Map<string, Pool>();
const MAX_POOLS = 64;

/** GET over one small keep-alive pool per origin; redirects are not followed (as jose's `redirect: manual`). */
export const fetchJsonOverPool: JsonFetcher = async (url, timeoutMs, maxBytes) => {
  let pool = pools.get(url.origin);
  if (!pool) {
    if (pools.size >= MAX_POOLS) {
      for (const p of pools.values()) void p.close();
      pools.clear();
    }
    pool = createPool(url.origin, { connections: 1, pipelining: 1, keepAliveTimeout: 30_000 });
    pools.set(url.origin, pool);
  }
  const res = await request(pool, {
    method: 'GET',
    path: `${url.pathname}${url.search}`,
    headers: { accept: 'application/json, application/jwk-set+json', 'user-agent': 'trellis-proxy' },
  }, timeoutMs, maxBytes);
  if (res.status !== 200) throw new Error(`the JWKS answer was ${res.status}, expected 200`);
  return JSON.parse(res.body.toString('utf8')) as unknown;
};

export function createRemoteKeySet(url: URL, local: typeof createLocalJWKSet, opts: RemoteJwksOptions,
  fetchJson: JsonFetcher = fetchJsonOverPool): KeySet {
  let keys: LocalKeySet | undefined;
  let fetchedAt = Number.NEGATIVE_INFINITY;
  let pending: Promise<void> | undefined;
  const freshFor = (ms: number): boolean => Date.now() < fetchedAt + ms;

  const reload = (): Promise<void> => {
    pending ??= fetchJson(url, opts.timeoutMs, opts.maxBytes ?? DEFAULT_MAX_BYTES).then(
      (json) => {
        keys = local(json as Parameters<typeof createLocalJWKSet>[0]); // throws ERR_JWKS_INVALID on a bad set
        fetchedAt = Date.now();
      },
      (err: unknown) => { throw new JwksFetchError(`JWKS ${url.href}: ${(err as Error).message}`, { cause: err }); },
    ).finally(() => { pending = undefined; });
    return pending;
  };

  const lookup = (async (header, token) => {
    if (!keys || !freshFor(opts.maxAgeMs)) await reload();
    try {
      return await keys!(header, token);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY' || freshFor(opts.cooldownMs)) throw err;
      await reload();
      return keys!(header, token);
    }
  }) as LocalKeySet;
  return lookup;
}
