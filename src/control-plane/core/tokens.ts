/**
 * Join tokens: JWTs signed ES256 with a token-signing key kept in the store (never the CA key).
 * Claims: svc (the service the bearer may obtain an identity for), cp (the xDS address HOST:PORT),
 * pin (the CA pin, "sha256:<hex>"), td (trust domain), iat, exp, jti; with several control planes sharing a
 * store (etcd), cps: every live control plane's xDS address (cp first), so a proxy can reach another one
 * when its own fails. Proxies that predate cps use cp.
 */
import { randomUUID } from 'node:crypto';
import {
  SignJWT, calculateJwkThumbprint, decodeJwt, errors as joseErrors, exportJWK, exportPKCS8,
  generateKeyPair, importJWK, importPKCS8, jwtVerify, type CryptoKey, type JWTPayload,
} from 'jose';
import { parseDuration } from '../../api/duration.js';
import type { Store } from './ports.js';

export const TOKEN_KEY_BLOB = 'token-signing-key';
export const DEFAULT_TOKEN_TTL_MS = 24 * 3_600_000;
const ALG = 'ES256';
const TYP = 'trellis-join+jwt';

export interface JoinTokenClaims {
  svc: string;
  cp: string;
  pin: string;
  td: string;
  iat: number;
  exp: number;
  jti: string;
  cps?: string[];
}

export interface IssuedToken { token: string; expiresAt: Date; claims: JoinTokenClaims }

export interface TokenContext {
  trustDomain: string;
  /** CA pin ("sha256:<hex>"). */
  pin: string;
  /** The xDS address proxies dial, HOST:PORT (known once the xDS listener is bound). */
  controlPlaneAddress: () => string;
  /** Every live control plane's xDS address (shared stores); more than one goes into the token as `cps`. */
  controlPlaneAddresses?: () => Promise<string[]>;
}

/** Reads a token's claims without verifying it (what a proxy does before it can trust anything). */
export function decodeJoinToken(token: string): JoinTokenClaims {
  let payload: JWTPayload;
  try {
    payload = decodeJwt(token.trim());
  } catch {
    throw new Error('malformed token');
  }
  const c = payload as Partial<JoinTokenClaims>;
  if (typeof c.svc !== 'string' || typeof c.cp !== 'string' || typeof c.pin !== 'string' || typeof c.td !== 'string') {
    throw new Error('malformed token: missing svc, cp, pin or td');
  }
  return c as JoinTokenClaims;
}

export class TokenService {
  private readonly privateKey: CryptoKey;
  private readonly publicKey: CryptoKey;
  private readonly kid: string;
  private readonly ctx: TokenContext;
  private readonly now: () => number;

  private constructor(privateKey: CryptoKey, publicKey: CryptoKey, kid: string, ctx: TokenContext, now: () => number) {
    this.privateKey = privateKey;
    this.publicKey = publicKey;
    this.kid = kid;
    this.ctx = ctx;
    this.now = now;
  }

  /** Loads the signing key from the store, creating it on first start. */
  static async init(store: Store, ctx: TokenContext, opts: { now?: () => number } = {}): Promise<TokenService> {
    let pem = await store.getBlob(TOKEN_KEY_BLOB);
    if (!pem) {
      const { privateKey } = await generateKeyPair(ALG, { extractable: true });
      pem = await store.putBlobIfAbsent(TOKEN_KEY_BLOB, await exportPKCS8(privateKey), { secret: true });
    }
    return TokenService.fromPem(pem, ctx, opts);
  }

  static async fromPem(pkcs8Pem: string, ctx: TokenContext, opts: { now?: () => number } = {}): Promise<TokenService> {
    const privateKey = await importPKCS8(pkcs8Pem, ALG, { extractable: true });
    const jwk = await exportJWK(privateKey);
    const { d: _d, ...publicJwk } = jwk;
    const publicKey = (await importJWK({ ...publicJwk, alg: ALG }, ALG)) as CryptoKey;
    const kid = await calculateJwkThumbprint(publicJwk);
    return new TokenService(privateKey, publicKey, kid, ctx, opts.now ?? (() => Date.now()));
  }

  /** Creates a join token for `service`, valid for `ttl` (a duration string or milliseconds; default 24h). */
  async create(service: string, ttl: string | number = DEFAULT_TOKEN_TTL_MS): Promise<IssuedToken> {
    const ttlMs = typeof ttl === 'number' ? ttl : parseDuration(ttl);
    if (!(ttlMs > 0)) throw new Error('token ttl must be positive');
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + Math.max(1, Math.round(ttlMs / 1000));
    const cp = this.ctx.controlPlaneAddress();
    const all = (await this.ctx.controlPlaneAddresses?.()) ?? [];
    const cps = [cp, ...all.filter((a) => a !== cp)];
    const claims: JoinTokenClaims = {
      svc: service, cp, pin: this.ctx.pin, td: this.ctx.trustDomain,
      iat, exp, jti: randomUUID(),
      ...(cps.length > 1 ? { cps } : {}),
    };
    const token = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: ALG, typ: TYP, kid: this.kid })
      .sign(this.privateKey);
    return { token, expiresAt: new Date(exp * 1000), claims };
  }

  /**
   * Verifies a join token; returns the service it grants. Throws Error("token expired"),
   * Error("token signature invalid") or Error("malformed token...").
   */
  async verify(token: string): Promise<{ service: string; claims: JoinTokenClaims }> {
    if (typeof token !== 'string' || token.trim().split('.').length !== 3) throw new Error('malformed token');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token.trim(), this.publicKey, {
        algorithms: [ALG],
        typ: TYP,
        currentDate: new Date(this.now()),
        requiredClaims: ['exp', 'iat'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new Error('token expired');
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw new Error('token signature invalid');
      throw new Error(`malformed token: ${(err as Error).message}`);
    }
    const c = payload as Partial<JoinTokenClaims>;
    if (typeof c.svc !== 'string' || c.svc.length === 0) throw new Error('malformed token: no service');
    if (c.td !== this.ctx.trustDomain) throw new Error(`token is for trust domain ${String(c.td)}, not ${this.ctx.trustDomain}`);
    return { service: c.svc, claims: c as JoinTokenClaims };
  }
}
