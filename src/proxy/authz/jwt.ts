/**
 * JWT verification for JWTAuthentication (SPEC §3). Built once per config version from the policies
 * targeting one service; used by the jwt-authentication filter (SERVICE_INBOUND).
 *
 * - The token is the `Authorization: Bearer <token>` header; any other scheme counts as no token.
 * - The policy is chosen by the token's `iss`; several policies may share an issuer (each is tried).
 * - Verified with jose: issuer, audiences (any of them, when set), exp / nbf (30 s clock tolerance),
 *   signature with a key of the policy's JWKS, algorithms RS256 and ES256 only (so `alg: none` and
 *   HMAC algorithms are refused). `jwks.inline` is parsed at build (a bad JWKS NACKs the config);
 *   `jwks.uri` is fetched by remote-jwks.ts over the proxy's undici pool (cached, refetched when an
 *   unknown `kid` shows up, at most once per cooldown), shared across config versions per URI.
 * - No token: refused when any policy is `required`, else the request goes on without claims.
 *   A bad token is refused even when not required.
 * Failures are JwtError (401 UNAUTHENTICATED) with a bounded `reason` for metrics.
 * jose's verification code (JWS, JWKS, key import) is loaded by loadJwtVerification(), which the proxy
 * awaits when a config with a JWTAuthentication arrives, before compiling it (runtime/optional-modules.ts):
 * a proxy without one never loads it. The decoders (can-i, issuer lookup) are small and loaded with this module.
 */
import type { JWTPayload, createLocalJWKSet, jwtVerify } from 'jose';
import { createRemoteKeySet, type KeySet } from './remote-jwks.js';
import { decodeJwt } from 'jose/jwt/decode';
import { decodeProtectedHeader } from 'jose/decode/protected_header';
import { MeshError } from '../../api/errors.js';
import type { ResourceOf } from '../../api/schema/resources.js';
import { byName } from '../../api/resource-order.js';

export type JwtPolicy = ResourceOf<'JWTAuthentication'>;

export const JWT_ALGORITHMS = ['RS256', 'ES256'];
export const CLOCK_TOLERANCE_SECONDS = 30;
export const DEFAULT_JWKS_COOLDOWN_MS = 30_000;

export type JwtFailureReason =
  | 'missing' | 'malformed' | 'expired' | 'not_yet_valid' | 'audience' | 'issuer' | 'algorithm'
  | 'signature' | 'no_matching_key' | 'jwks_unavailable' | 'invalid';

export class JwtError extends MeshError {
  constructor(readonly reason: JwtFailureReason, message: string) {
    super('UNAUTHENTICATED', message);
  }
}

export interface JwtResult {
  /** Verified claims, or undefined when there was no token and none is required. */
  claims?: JWTPayload;
  /** The JWTAuthentication that verified the token. */
  policy?: string;
}

export interface JwtAuthenticator {
  readonly required: boolean;
  readonly issuers: readonly string[];
  /** Verifies the Authorization header's bearer token; throws JwtError (401). */
  authenticate(authorization: string | string[] | undefined): Promise<JwtResult>;
}

export interface JwtOptions {
  /** Minimum time between two JWKS fetches of one URI (default 30 s; jose's cooldown). */
  jwksCooldownMs?: number;
  /** JWKS cache lifetime (default 10 min). */
  jwksCacheMaxAgeMs?: number;
}

interface JoseVerification {
  jwtVerify: typeof jwtVerify;
  createLocalJWKSet: typeof createLocalJWKSet;
}

let verification: JoseVerification | undefined;
let loading: Promise<void> | undefined;

/** Loads jose's JWT verification and JWKS code once; compileJwtAuthenticator needs it. */
export function loadJwtVerification(): Promise<void> {
  loading ??= Promise.all([import('jose/jwt/verify'), import('jose/jwks/local')]).then(([v, l]) => {
    verification = { jwtVerify: v.jwtVerify, createLocalJWKSet: l.createLocalJWKSet };
  }, (err: unknown) => {
    loading = undefined; // a later config tries again
    throw err;
  });
  return loading;
}

function jose(): JoseVerification {
  if (!verification) throw new Error('JWT verification is not loaded: await loadJwtVerification() before compiling a JWTAuthentication');
  return verification;
}

const remoteSets = new Map<string, KeySet>();
function remoteSet(uri: string, opts: JwtOptions): KeySet {
  const cooldown = opts.jwksCooldownMs ?? DEFAULT_JWKS_COOLDOWN_MS;
  const maxAge = opts.jwksCacheMaxAgeMs ?? 600_000;
  const key = `${uri}|${cooldown}|${maxAge}`;
  let set = remoteSets.get(key);
  if (!set) {
    if (remoteSets.size >= 256) remoteSets.clear();
    set = createRemoteKeySet(new URL(uri), jose().createLocalJWKSet, { cooldownMs: cooldown, maxAgeMs: maxAge, timeoutMs: 5_000 });
    remoteSets.set(key, set);
  }
  return set;
}

/** The key set of one policy; inline JWKS are parsed here (throws on a bad one, so the config is NACKed). */
function keySetOf(policy: JwtPolicy, opts: JwtOptions): KeySet {
  const { jwks } = policy.spec;
  if (jwks.uri) return remoteSet(jwks.uri, opts);
  let parsed: unknown;
  try {
    parsed = JSON.parse(jwks.inline ?? '');
  } catch (err) {
    throw new Error(`JWTAuthentication "${policy.metadata.name}": jwks.inline is not JSON: ${(err as Error).message}`);
  }
  try {
    return jose().createLocalJWKSet(parsed as Parameters<typeof createLocalJWKSet>[0]);
  } catch (err) {
    throw new Error(`JWTAuthentication "${policy.metadata.name}": jwks.inline is not a JWK Set: ${(err as Error).message}`);
  }
}

/** The bearer token of an Authorization header, or undefined (absent, or another scheme). */
export function bearerToken(authorization: string | string[] | undefined): string | undefined {
  if (Array.isArray(authorization)) {
    if (authorization.length > 1) throw new JwtError('malformed', 'several Authorization headers');
    authorization = authorization[0];
  }
  if (!authorization) return undefined;
  const m = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(authorization);
  if (!m) return undefined;
  return m[1];
}

/** Maps a jose error to a bounded reason and a message safe to return to the caller. */
export function classifyJoseError(err: unknown): JwtError {
  if (err instanceof JwtError) return err;
  const e = err as { code?: string; claim?: string; message?: string };
  switch (e.code) {
    case 'ERR_JWT_EXPIRED': return new JwtError('expired', 'the token has expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'nbf') return new JwtError('not_yet_valid', 'the token is not valid yet (nbf)');
      if (e.claim === 'aud') return new JwtError('audience', 'the token audience is not accepted');
      if (e.claim === 'iss') return new JwtError('issuer', 'the token issuer is not accepted');
      if (e.claim === 'iat') return new JwtError('invalid', 'the token iat claim is invalid');
      return new JwtError('invalid', `the token claim "${e.claim ?? '?'}" is invalid`);
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return new JwtError('algorithm', `the token algorithm is not accepted (only ${JWT_ALGORITHMS.join(', ')})`);
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return new JwtError('signature', 'the token signature is invalid');
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return new JwtError('no_matching_key', 'no key of the issuer\'s JWKS matches the token');
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
      return new JwtError('jwks_unavailable', 'the issuer\'s JWKS could not be fetched');
    case 'ERR_JWT_INVALID':
    case 'ERR_JWS_INVALID':
      return new JwtError('malformed', 'the token is malformed');
    default:
      return new JwtError('jwks_unavailable', 'the token could not be verified (JWKS unavailable)');
  }
}

export function compileJwtAuthenticator(service: string, policies: readonly JwtPolicy[], opts: JwtOptions = {}): JwtAuthenticator | null {
  const mine = policies.filter((p) => p.spec.targetRef.name === service)
    .sort(byName);
  if (mine.length === 0) return null;
  const verifiers = mine.map((p) => ({
    name: p.metadata.name,
    issuer: p.spec.issuer,
    audiences: p.spec.audiences && p.spec.audiences.length > 0 ? p.spec.audiences : undefined,
    keys: keySetOf(p, opts),
  }));
  const verify = jose().jwtVerify;
  const required = mine.some((p) => p.spec.required);
  const issuers = [...new Set(mine.map((p) => p.spec.issuer))];

  return {
    required,
    issuers,
    async authenticate(authorization) {
      const token = bearerToken(authorization);
      if (token === undefined) {
        if (required) throw new JwtError('missing', 'a bearer token is required');
        return {};
      }
      let iss: unknown;
      try {
        decodeProtectedHeader(token);
        iss = decodeJwt(token).iss;
      } catch {
        throw new JwtError('malformed', 'the token is malformed');
      }
      const candidates = verifiers.filter((v) => v.issuer === iss);
      if (candidates.length === 0) throw new JwtError('issuer', 'the token issuer is not accepted');
      let first: JwtError | undefined;
      for (const v of candidates) {
        try {
          const { payload } = await verify(token, v.keys, {
            issuer: v.issuer,
            ...(v.audiences ? { audience: v.audiences } : {}),
            algorithms: JWT_ALGORITHMS,
            clockTolerance: CLOCK_TOLERANCE_SECONDS,
          });
          return { claims: payload, policy: v.name };
        } catch (err) {
          first ??= classifyJoseError(err);
        }
      }
      throw first!;
    },
  };
}

/**
 * For `trellis can-i`: the checks the proxy makes that need no signature (issuer, audience, exp, nbf,
 * presence). Returns the failure the proxy would answer, or undefined. The signature is NOT verified.
 */
export function checkClaimsUnverified(service: string, policies: readonly JwtPolicy[], token: string | undefined, nowSeconds = Math.floor(Date.now() / 1000)):
  { claims?: JWTPayload; failure?: JwtError } {
  const mine = policies.filter((p) => p.spec.targetRef.name === service);
  if (mine.length === 0) return {};
  if (token === undefined) {
    return mine.some((p) => p.spec.required) ? { failure: new JwtError('missing', 'a bearer token is required') } : {};
  }
  let claims: JWTPayload;
  let alg: string | undefined;
  try {
    alg = decodeProtectedHeader(token).alg;
    claims = decodeJwt(token);
  } catch {
    return { failure: new JwtError('malformed', 'the token is malformed') };
  }
  if (!alg || !JWT_ALGORITHMS.includes(alg)) return { failure: new JwtError('algorithm', `the token algorithm is not accepted (only ${JWT_ALGORITHMS.join(', ')})`) };
  const candidates = mine.filter((p) => p.spec.issuer === claims.iss);
  if (candidates.length === 0) return { failure: new JwtError('issuer', 'the token issuer is not accepted') };
  if (typeof claims.exp === 'number' && claims.exp <= nowSeconds - CLOCK_TOLERANCE_SECONDS) return { failure: new JwtError('expired', 'the token has expired') };
  if (typeof claims.nbf === 'number' && claims.nbf > nowSeconds + CLOCK_TOLERANCE_SECONDS) return { failure: new JwtError('not_yet_valid', 'the token is not valid yet (nbf)') };
  const auds = claims.aud === undefined ? [] : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  const audOk = candidates.some((p) => !p.spec.audiences || p.spec.audiences.length === 0 || p.spec.audiences.some((a) => auds.includes(a)));
  if (!audOk) return { failure: new JwtError('audience', 'the token audience is not accepted') };
  return { claims };
}
