/**
 * `trellis can-i --from A --to B METHOD PATH [--header k=v ...] [--jwt TOKEN] [--port N]`: would the
 * proxies of B let A's request in? It fetches what B's proxies receive (the AuthorizationPolicies and
 * JWTAuthentications targeting B, the MeshConfig) through the SDK and evaluates the SAME engine
 * (proxy/authz/engine.ts) on the SAME normalised path (proxy/authz/path.ts).
 * `--plaintext` instead of `--from`: a caller with no mesh identity (a plaintext client on B's inbound
 * port). Under MeshConfig mtls STRICT the proxy refuses its connection before any request (outcome
 * MTLS_REQUIRED); under PERMISSIVE the engine decides with no identity, as the proxy does.
 * --jwt: the claims are decoded and issuer, audience, exp and nbf checked like the proxy does, but
 * the signature is NOT verified by can-i (it has no business fetching keys); the output says so.
 * Exit 0 when allowed, 1 when denied (403, 401 or 400 at the proxy), 2 when it could not tell.
 * Definition and options: ../program/can-i.ts.
 */
import { parseHeaders } from '../options.js';
import type { ResourceOf } from '../../api/schema/resources.js';
import { DEFAULT_MESH_CONFIG } from '../../api/schema/resources.js';
import { MeshError } from '../../api/errors.js';
import { compileAuthz, type AuthzDecision, type MtlsMode } from '../../proxy/authz/engine.js';
import { checkClaimsUnverified } from '../../proxy/authz/jwt.js';
import { normaliseTarget } from '../../proxy/authz/path.js';
import { toJson, toYaml, type OutputFormat } from '../output.js';
import { clientFor, handleApiError, type ClientCliOptions } from './resources.js';

export interface CanIResult {
  allowed: boolean;
  /**
   * What the proxy would answer: 'allow', or the error code (FORBIDDEN, UNAUTHENTICATED, BAD_REQUEST);
   * MTLS_REQUIRED (status 0): a plaintext caller under mtls STRICT, whose connection is refused with no answer.
   */
  outcome: 'allow' | 'FORBIDDEN' | 'UNAUTHENTICATED' | 'BAD_REQUEST' | 'MTLS_REQUIRED';
  status: number;
  /** The calling service, or PLAINTEXT_CALLER for --plaintext. */
  from: string;
  /** The caller's SPIFFE ID; null for a plaintext caller. */
  identity: string | null;
  to: string;
  method: string;
  path: string;
  normalisedPath?: string;
  port?: number;
  policy?: string;
  rule?: number;
  action?: string;
  reason: string;
  audits: Array<{ policy: string; rule: number }>;
  notes: string[];
}


/** How can-i names a caller without identity (parentheses: never a service name). */
export const PLAINTEXT_CALLER = '(plaintext)';

export interface CanIInput {
  /** The calling service; undefined: a plaintext caller without mesh identity. */
  from: string | undefined; to: string; method: string; path: string;
  headers: Record<string, string | string[]>; jwt?: string; port?: number;
  trustDomain: string;
  authorizationPolicies: ResourceOf<'AuthorizationPolicy'>[];
  jwtAuthentications: ResourceOf<'JWTAuthentication'>[];
  defaultAction: 'allow' | 'deny';
  /** MeshConfig mtls (default STRICT). */
  mtls?: MtlsMode;
}

/** Pure: the decision for one request, from the resources a proxy of `to` would hold. */
export function decideCanI(input: CanIInput): CanIResult {
  const sourceIdentity = input.from !== undefined ? `spiffe://${input.trustDomain}/service/${input.from}` : undefined;
  const mtls = input.mtls ?? 'STRICT';
  const base = {
    from: input.from ?? PLAINTEXT_CALLER, identity: sourceIdentity ?? null, to: input.to, method: input.method, path: input.path,
    ...(input.port !== undefined ? { port: input.port } : {}),
  };
  const notes: string[] = [];
  if (sourceIdentity === undefined && mtls === 'STRICT') {
    return {
      ...base, allowed: false, outcome: 'MTLS_REQUIRED', status: 0, audits: [], notes,
      reason: `MeshConfig mtls is STRICT: the inbound listener of ${input.to} accepts mTLS only and closes a plaintext connection before any request`,
    };
  }
  if (sourceIdentity === undefined) notes.push('a plaintext caller has no identity: rules with `from` never match it; x-trellis-peer is not set');
  let target;
  try {
    target = normaliseTarget(input.path);
  } catch (err) {
    const e = err as MeshError;
    return { ...base, allowed: false, outcome: 'BAD_REQUEST', status: 400, reason: e.message, audits: [], notes };
  }
  const normalisedPath = target.path;
  const jwtPolicies = input.jwtAuthentications.filter((p) => p.spec.targetRef.name === input.to);
  if (input.jwt !== undefined) {
    notes.push('the JWT signature is not verified by can-i (claims are only decoded)');
    if (jwtPolicies.length === 0) notes.push(`no JWTAuthentication targets ${input.to}: the proxy does not verify the token, and jwt.claims conditions never hold`);
  }
  const jwt = checkClaimsUnverified(input.to, jwtPolicies, input.jwt);
  if (jwt.failure) {
    return { ...base, normalisedPath, allowed: false, outcome: 'UNAUTHENTICATED', status: 401, reason: `JWTAuthentication: ${jwt.failure.message}`, audits: [], notes };
  }
  const engine = compileAuthz(input.to, input.authorizationPolicies, input.defaultAction, mtls);
  // Like the proxy's inbound-identity filter: client copies of x-trellis-* are dropped, the peer header set (mesh callers only).
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(input.headers)) if (!k.startsWith('x-trellis-')) headers[k] = v;
  if (sourceIdentity !== undefined) headers['x-trellis-peer'] = sourceIdentity;
  const d: AuthzDecision = engine.evaluate({
    sourceIdentity,
    sourceService: input.from,
    method: input.method,
    path: normalisedPath,
    port: input.port,
    headers,
    jwtClaims: jwt.claims as Record<string, unknown> | undefined,
  });
  return {
    ...base, normalisedPath,
    allowed: d.decision === 'allow',
    outcome: d.decision === 'allow' ? 'allow' : 'FORBIDDEN',
    status: d.decision === 'allow' ? 200 : 403,
    ...(d.policy !== undefined ? { policy: d.policy } : {}),
    ...(d.rule !== undefined ? { rule: d.rule } : {}),
    action: d.action,
    reason: d.reason,
    audits: d.audits,
    notes,
  };
}

export function formatCanI(r: CanIResult, format: OutputFormat): string {
  if (format === 'json') return toJson(r);
  if (format === 'yaml') return toYaml(r);
  const lines = [r.allowed ? 'allowed' : 'denied'];
  const field = (k: string, v: string) => lines.push(`  ${(k + ':').padEnd(12)} ${v}`);
  field('request', `${r.from} → ${r.to} ${r.method} ${r.path}${r.normalisedPath !== undefined && r.normalisedPath !== r.path.split('?')[0] ? ` (normalised: ${r.normalisedPath})` : ''}`);
  field('proxy', r.allowed ? 'forwards to the app' : r.outcome === 'MTLS_REQUIRED' ? 'closes the plaintext connection (mTLS required)' : `answers ${r.status} ${r.outcome}`);
  field('decided by', r.policy !== undefined ? `AuthorizationPolicy/${r.policy} rule ${r.rule} (${r.action})` : (r.action ?? r.outcome));
  field('reason', r.reason);
  if (r.audits.length) field('audits', r.audits.map((a) => `AuthorizationPolicy/${a.policy} rule ${a.rule}`).join(', '));
  for (const n of r.notes) field('note', n);
  return lines.join('\n') + '\n';
}

export async function runCanI(method: string, path: string, opts: ClientCliOptions & {
  from?: string; plaintext?: boolean; to: string; header: string[]; jwt?: string; port?: number; output: OutputFormat;
}): Promise<void> {
  try {
    if ((opts.from === undefined) === (opts.plaintext !== true)) throw new Error('give exactly one of --from SERVICE and --plaintext');
    const client = clientFor(opts);
    const [status, authz, jwts, meshConfigs, services] = await Promise.all([
      client.status(),
      client.list('AuthorizationPolicy'),
      client.list('JWTAuthentication'),
      client.list('MeshConfig'),
      client.list('Service'),
    ]);
    const mesh = meshConfigs.find((m): m is ResourceOf<'MeshConfig'> => m.kind === 'MeshConfig' && m.metadata.name === 'default');
    const svc = services.find((s): s is ResourceOf<'Service'> => s.kind === 'Service' && s.metadata.name === opts.to);
    const port = opts.port ?? svc?.spec.port;
    const result = decideCanI({
      from: opts.plaintext ? undefined : opts.from, to: opts.to, method: method.toUpperCase(), path,
      headers: parseHeaders(opts.header),
      ...(opts.jwt !== undefined ? { jwt: opts.jwt } : {}),
      ...(port !== undefined ? { port } : {}),
      trustDomain: status.trustDomain,
      authorizationPolicies: authz.filter((r): r is ResourceOf<'AuthorizationPolicy'> => r.kind === 'AuthorizationPolicy' && r.spec.targetRef.name === opts.to),
      jwtAuthentications: jwts.filter((r): r is ResourceOf<'JWTAuthentication'> => r.kind === 'JWTAuthentication' && r.spec.targetRef.name === opts.to),
      defaultAction: (mesh?.spec ?? DEFAULT_MESH_CONFIG).authorization.default,
      mtls: (mesh?.spec ?? DEFAULT_MESH_CONFIG).mtls,
    });
    process.stdout.write(formatCanI(result, opts.output));
    process.exitCode = result.allowed ? 0 : 1;
  } catch (err) {
    handleApiError(err);
    process.exitCode = 2;
  }
}
