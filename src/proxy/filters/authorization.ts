/**
 * AuthorizationPolicy (SPEC §3) and MeshConfig authorization.default, inbound (SERVICE_INBOUND, after
 * inbound-identity and jwt-authentication). The pure engine (authz/engine.ts) is compiled once per
 * config version; per request this filter only gathers attributes — the verified peer identity from
 * the certificate (none for a plaintext caller under MeshConfig mtls PERMISSIVE), the method, the
 * normalised path (normalised once by ingress, authz/path.ts), the service's declared port, the
 * headers, the verified JWT claims — and evaluates.
 * Denied → 403 FORBIDDEN naming the deciding policy. Every decision is counted in
 * trellis_authz_decisions_total{policy,action,decision}; every AUDIT match is counted (action AUDIT)
 * and logged as one JSON line ("authz audit"), and never blocks. Every deny is also reported to the control
 * plane with the next stats message (proxy/stats.ts recordDenial; GET /api/v1/denials).
 * No policy and default allow → no filter at all (null): nothing to do per request.
 */
import { MeshError } from '../../api/errors.js';
import { compileAuthz, type AuthzDecision, type AuthzEngine } from '../authz/engine.js';
import { pathOnly } from '../authz/path.js';
import type { ProxyMetrics } from '../metrics.js';
import type { ServiceFilterFactory } from '../pipeline/factory.js';
import type { HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';
import type { Logger } from '../../shared/log.js';
import { denialOf } from './denial.js';
import { JWT_CLAIMS_ATTR } from './jwt-authentication.js';

export const AUTHZ_ATTR = 'authz';

export class AuthorizationFilter implements HttpFilter {
  readonly name = 'authorization';
  constructor(
    private readonly engine: AuthzEngine,
    private readonly port: number | undefined,
    private readonly metrics?: ProxyMetrics,
    private readonly log?: Logger,
    /** The service this filter protects (the destination of a denial). */
    private readonly service = '',
  ) {}

  handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    const decision = this.engine.evaluate({
      sourceIdentity: req.source.identity,
      sourceService: req.source.identity ? req.source.service : undefined,
      method: req.method,
      path: pathOnly(req.path),
      port: this.port,
      headers: req.headers,
      jwtClaims: req.attrs[JWT_CLAIMS_ATTR] as Record<string, unknown> | undefined,
    });
    req.attrs[AUTHZ_ATTR] = decision;
    this.record(req, decision);
    if (decision.decision === 'deny') {
      this.metrics?.stats.recordDenial(denialOf(req, this.service, decision.reason, decision.policy, decision.rule));
      return Promise.reject(new MeshError('FORBIDDEN', decision.reason));
    }
    return next(req);
  }

  private record(req: MeshRequest, d: AuthzDecision): void {
    this.metrics?.authzDecisions.labels({ policy: d.policy ?? '-', action: d.action, decision: d.decision }).inc();
    for (const a of d.audits) {
      this.metrics?.authzDecisions.labels({ policy: a.policy, action: 'AUDIT', decision: d.decision }).inc();
      this.log?.info('authz audit', {
        policy: a.policy, rule: a.rule, decision: d.decision, decidedBy: d.policy ?? d.action,
        source: req.source.identity ?? null, method: req.method, path: req.path, requestId: req.requestId,
      });
    }
  }
}

export const authorizationFactory: ServiceFilterFactory = {
  name: 'authorization',
  build(ctx, service, cluster) {
    const engine = compileAuthz(service, ctx.snapshot.authorizationPolicies, ctx.snapshot.meshConfig.authorization.default, ctx.snapshot.meshConfig.mtls);
    if (engine.allowsEverything) return null;
    return new AuthorizationFilter(engine, cluster?.config.port ?? ctx.snapshot.clusters[service]?.port, ctx.services.metrics, ctx.services.log, service);
  },
};
