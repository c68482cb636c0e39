/**
 * Denials reported to the control plane: the authorization filter records each deny in the stats aggregator
 * (proxy/stats.ts), at most MAX_DENIALS_PER_STATS per interval, the rest counted (denialsDropped and
 * trellis_authz_denials_unreported_total); the stats message stays valid.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorizationPolicySpec } from '../../../src/api/schema/resources.js';
import { MAX_DENIALS_PER_STATS } from '../../../src/api/schema/tap.js';
import { ProxyMessage } from '../../../src/api/schema/xds.js';
import { compileAuthz, type AuthorizationPolicy } from '../../../src/proxy/authz/engine.js';
import { AuthorizationFilter } from '../../../src/proxy/filters/authorization.js';
import { JwtAuthenticationFilter } from '../../../src/proxy/filters/jwt-authentication.js';
import { JwtError } from '../../../src/proxy/authz/jwt.js';
import { ProxyMetrics } from '../../../src/proxy/metrics.js';
import { meshRequest, response } from '../filters/helpers.js';

const deny: AuthorizationPolicy = {
  apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-admin' },
  spec: AuthorizationPolicySpec.parse({ targetRef: { name: 'backend' }, action: 'DENY', rules: [{ to: [{ paths: ['/admin/*'] }] }] }),
} as AuthorizationPolicy;

describe('denials in stats messages', () => {
  it('records each deny (not allows), bounded per interval, with the rest only counted', async () => {
    const metrics = new ProxyMetrics({ service: 'backend', instance: 'backend-1' });
    const filter = new AuthorizationFilter(compileAuthz('backend', [deny], 'allow'), undefined, metrics, undefined, 'backend');
    const req = (path: string) => meshRequest({
      direction: 'inbound', method: 'DELETE', path, destination: 'backend',
      source: { identity: 'spiffe://trellis.local/service/frontend', service: 'frontend' },
    });
    await filter.handle(req('/public'), async () => response(200));
    for (let i = 0; i < MAX_DENIALS_PER_STATS + 3; i++) await filter.handle(req(`/admin/${i}`), async () => response(200)).catch(() => undefined);
    const msg = metrics.stats.flush()!;
    assert.doesNotThrow(() => ProxyMessage.parse(msg));
    assert.equal(msg.denials!.length, MAX_DENIALS_PER_STATS);
    assert.equal(msg.denialsDropped, 3);
    const d = msg.denials![0]!;
    assert.deepEqual({ ...d, at: undefined }, {
      at: undefined, instance: 'backend-1', source: 'frontend', destination: 'backend', method: 'DELETE', path: '/admin/0',
      policy: 'deny-admin', rule: 0, reason: d.reason,
    });
    assert.match(await metrics.registry.metrics(), /trellis_authz_denials_unreported_total\{[^}]*\} 3/);
    const next = metrics.stats.flush();
    assert.equal(next?.denials, undefined, 'a new interval starts empty');
  });

  it('records JWT authentication 401s as denials without a policy', async () => {
    const metrics = new ProxyMetrics({ service: 'backend', instance: 'backend-1' });
    const auth = { required: true, issuers: ['https://issuer'], authenticate: async () => { throw new JwtError('expired', 'the token expired'); } };
    const filter = new JwtAuthenticationFilter(auth, metrics, 'backend');
    const req = meshRequest({ direction: 'inbound', path: '/data', destination: 'backend', source: { identity: 'spiffe://trellis.local/service/frontend', service: 'frontend' } });
    await assert.rejects(filter.handle(req, async () => response(200)), JwtError);
    const [d] = metrics.stats.flush()!.denials!;
    assert.equal(d!.source, 'frontend');
    assert.equal(d!.destination, 'backend');
    assert.equal(d!.path, '/data');
    assert.equal(d!.policy, undefined);
    assert.match(d!.reason, /^unauthenticated: the token expired/);
  });
});
