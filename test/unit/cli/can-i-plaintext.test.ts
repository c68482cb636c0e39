/**
 * `trellis can-i --plaintext`: a caller without mesh identity, decided like the proxy does: refused at
 * the connection under mtls STRICT, judged by the engine with no identity under PERMISSIVE.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorizationPolicySpec, type ResourceOf } from '../../../src/api/schema/resources.js';
import { decideCanI, formatCanI, PLAINTEXT_CALLER, type CanIInput } from '../../../src/cli/commands/can-i.js';

const allowFrontend = {
  apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'allow-frontend' },
  spec: AuthorizationPolicySpec.parse({ targetRef: { name: 'backend' }, action: 'ALLOW', rules: [{ from: [{ services: ['frontend'] }] }] }),
} as ResourceOf<'AuthorizationPolicy'>;

function input(over: Partial<CanIInput>): CanIInput {
  return {
    from: undefined, to: 'backend', method: 'GET', path: '/x', headers: {}, trustDomain: 'trellis.local',
    authorizationPolicies: [], jwtAuthentications: [], defaultAction: 'allow', ...over,
  };
}

describe('can-i for a plaintext caller', () => {
  it('under STRICT: MTLS_REQUIRED, no HTTP status, exit as denied', () => {
    for (const r of [decideCanI(input({})), decideCanI(input({ mtls: 'STRICT' }))]) {
      assert.equal(r.allowed, false);
      assert.equal(r.outcome, 'MTLS_REQUIRED');
      assert.equal(r.status, 0);
      assert.equal(r.from, PLAINTEXT_CALLER);
      assert.equal(r.identity, null);
      assert.match(formatCanI(r, 'table'), /closes the plaintext connection/);
    }
  });

  it('under PERMISSIVE: default allow admits it, default deny and an ALLOW from a service refuse it (403)', () => {
    const open = decideCanI(input({ mtls: 'PERMISSIVE' }));
    assert.equal(open.allowed, true);
    assert.equal(open.action, 'DEFAULT');
    assert.ok(open.notes.some((n) => /no identity/.test(n)));
    const deny = decideCanI(input({ mtls: 'PERMISSIVE', defaultAction: 'deny' }));
    assert.equal(deny.outcome, 'FORBIDDEN');
    assert.equal(deny.status, 403);
    const spoofed = decideCanI(input({ mtls: 'PERMISSIVE', authorizationPolicies: [allowFrontend], headers: { 'x-trellis-peer': 'spiffe://trellis.local/service/frontend' } }));
    assert.equal(spoofed.outcome, 'FORBIDDEN', 'a client copy of x-trellis-peer is no identity');
    assert.equal(spoofed.action, 'NO_ALLOW_MATCH');
    const mesh = decideCanI(input({ mtls: 'PERMISSIVE', from: 'frontend', authorizationPolicies: [allowFrontend] }));
    assert.equal(mesh.allowed, true);
    assert.equal(mesh.identity, 'spiffe://trellis.local/service/frontend');
  });
});
