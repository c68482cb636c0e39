/**
 * Reads what a join token tells the proxy before it trusts anything: the control plane's xDS
 * address and the pin of its CA. The token itself is only verified by the control plane.
 */
// The decoder alone (jose's index brings its JWS/JWE/JWK code: ~7 MiB more RSS, docs/dependencies.md).
import { decodeJwt } from 'jose/jwt/decode';

export interface JoinTokenClaims {
  service: string;
  controlPlane: string;
  /** Every control plane's xDS address (`cps`, tokens of control planes sharing etcd), else [controlPlane]. */
  controlPlanes: string[];
  caPin: string;
  trustDomain: string;
  expiresAt?: Date;
}

export function readJoinToken(token: string): JoinTokenClaims {
  let claims: Record<string, unknown>;
  try {
    claims = decodeJwt(token.trim()) as Record<string, unknown>;
  } catch {
    throw new Error('malformed join token: create one with `trellis token create --service NAME`');
  }
  const { svc, cp, pin, td, exp, cps } = claims;
  if (typeof svc !== 'string' || typeof cp !== 'string' || typeof pin !== 'string' || typeof td !== 'string') {
    throw new Error('malformed join token: missing service, control plane or CA pin');
  }
  const all = Array.isArray(cps) && cps.length > 0 && cps.every((a) => typeof a === 'string') ? cps as string[] : [cp];
  return { service: svc, controlPlane: cp, controlPlanes: all.includes(cp) ? all : [cp, ...all], caPin: pin, trustDomain: td, expiresAt: typeof exp === 'number' ? new Date(exp * 1000) : undefined };
}
