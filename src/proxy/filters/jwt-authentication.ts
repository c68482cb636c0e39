/**
 * JWTAuthentication (SPEC §3), inbound (SERVICE_INBOUND, right before authorization): verifies the
 * `Authorization: Bearer` token against the policies targeting this service (authz/jwt.ts) and puts
 * the verified claims on req.attrs.jwtClaims for the authorization filter (`when: jwt.claims.NAME`).
 * A bad or expired token, or a missing one when required → 401 UNAUTHENTICATED. Nothing is stripped:
 * the app still receives the Authorization header. Absent policy → no filter (null). A 401 is reported as a
 * denial (no policy, reason `unauthenticated: ...`) like authorization's 403s.
 */
import { compileJwtAuthenticator, JwtError, type JwtAuthenticator, type JwtOptions } from '../authz/jwt.js';
import type { ProxyMetrics } from '../metrics.js';
import type { ServiceFilterFactory } from '../pipeline/factory.js';
import type { HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';
import { denialOf } from './denial.js';

export const JWT_CLAIMS_ATTR = 'jwtClaims';
export const JWT_POLICY_ATTR = 'jwtPolicy';

export class JwtAuthenticationFilter implements HttpFilter {
  readonly name = 'jwt-authentication';
  constructor(private readonly auth: JwtAuthenticator, private readonly metrics?: ProxyMetrics, private readonly service = '') {}

  async handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    try {
      const result = await this.auth.authenticate(req.headers['authorization']);
      if (result.claims) {
        req.attrs[JWT_CLAIMS_ATTR] = result.claims;
        req.attrs[JWT_POLICY_ATTR] = result.policy;
      }
    } catch (err) {
      if (err instanceof JwtError) {
        this.metrics?.jwtFailures.labels({ reason: err.reason }).inc();
        this.metrics?.stats.recordDenial(denialOf(req, this.service, `unauthenticated: ${err.message}`));
      }
      throw err;
    }
    return next(req);
  }
}

/** Options for tests (JWKS cooldown); the proxy uses the defaults. */
export function jwtAuthenticationFactoryWith(opts: JwtOptions): ServiceFilterFactory {
  return {
    name: 'jwt-authentication',
    build(ctx, service) {
      const auth = compileJwtAuthenticator(service, ctx.snapshot.jwtAuthentications, opts);
      return auth ? new JwtAuthenticationFilter(auth, ctx.services.metrics, service) : null;
    },
  };
}

export const jwtAuthenticationFactory: ServiceFilterFactory = jwtAuthenticationFactoryWith({});
