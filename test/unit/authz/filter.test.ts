import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorizationPolicySpec, MeshConfigSpec } from '../../../src/api/schema/resources.js';
import { MeshError } from '../../../src/api/errors.js';
import { compileAuthz, type AuthorizationPolicy } from '../../../src/proxy/authz/engine.js';
import { AuthorizationFilter, authorizationFactory } from '../../../src/proxy/filters/authorization.js';
import { ProxyMetrics } from '../../../src/proxy/metrics.js';
import type { BuildContext } from '../../../src/proxy/pipeline/factory.js';
import type { Logger } from '../../../src/shared/log.js';
import { meshRequest, response } from '../filters/helpers.js';

function policy(name: string, spec: Record<string, unknown>): AuthorizationPolicy {
  return {
    apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name },
    spec: AuthorizationPolicySpec.parse({ targetRef: { name: 'backend' }, ...spec }),
  } as AuthorizationPolicy;
}

function ctx(policies: AuthorizationPolicy[], def: 'allow' | 'deny'): BuildContext {
  return {
    self: 'backend',
    services: { metrics: new ProxyMetrics({ service: 'backend', instance: 'i' }), log: logger([]) },
    snapshot: { version: '1', trustDomain: 'trellis.local', meshConfig: MeshConfigSpec.parse({ authorization: { default: def } }), clusters: {}, httpRoutes: [], tcpRoutes: [], authorizationPolicies: policies, jwtAuthentications: [] },
  } as unknown as BuildContext;
}

function logger(lines: Array<{ msg: string; fields?: Record<string, unknown> }>): Logger {
  const l: Logger = {
    debug: () => {}, warn: () => {}, error: () => {},
    info: (msg, fields) => { lines.push({ msg, ...(fields ? { fields } : {}) }); },
    child: () => l,
  };
  return l;
}

const inbound = (path: string, service = 'frontend') => meshRequest({
  direction: 'inbound', path, destination: 'backend',
  source: { identity: `spiffe://trellis.local/service/${service}`, service },
});

describe('authorization filter', () => {
  it('is absent when there is no policy and the default is allow', () => {
    assert.equal(authorizationFactory.build(ctx([], 'allow'), 'backend', undefined), null);
    assert.ok(authorizationFactory.build(ctx([], 'deny'), 'backend', undefined));
    assert.ok(authorizationFactory.build(ctx([policy('a', { action: 'AUDIT', rules: [{}] })], 'allow'), 'backend', undefined));
  });

  it('answers 403 FORBIDDEN naming the policy, counts decisions, logs audits, checks the path without the query', async () => {
    const metrics = new ProxyMetrics({ service: 'backend', instance: 'i' });
    const lines: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
    const engine = compileAuthz('backend', [
      policy('deny-admin', { action: 'DENY', rules: [{ to: [{ paths: ['/admin/*'] }] }] }),
      policy('watch', { action: 'AUDIT', rules: [{ to: [{ methods: ['GET'] }] }] }),
    ], 'allow');
    const filter = new AuthorizationFilter(engine, undefined, metrics, logger(lines));
    let forwarded = 0;
    const next = async () => { forwarded++; return response(200); };
    await assert.rejects(filter.handle(inbound('/admin/x?y=1'), next), (err: unknown) =>
      err instanceof MeshError && err.code === 'FORBIDDEN' && err.status === 403 && /deny-admin/.test(err.message));
    assert.equal((await filter.handle(inbound('/public/x?admin/'), next)).status, 200);
    assert.equal(forwarded, 1);
    const text = await metrics.registry.metrics();
    assert.match(text, /trellis_authz_decisions_total\{policy="deny-admin",action="DENY",decision="deny"[^}]*\} 1/);
    assert.match(text, /trellis_authz_decisions_total\{policy="-",action="DEFAULT",decision="allow"[^}]*\} 1/);
    assert.match(text, /trellis_authz_decisions_total\{policy="watch",action="AUDIT",decision="deny"[^}]*\} 1/);
    assert.match(text, /trellis_authz_decisions_total\{policy="watch",action="AUDIT",decision="allow"[^}]*\} 1/);
    assert.equal(lines.filter((l) => l.msg === 'authz audit').length, 2);
    assert.equal(lines[0]!.fields!.policy, 'watch');
  });
});
