import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorizationPolicySpec } from '../../../src/api/schema/resources.js';
import { compileAuthz, type AuthorizationPolicy, type AuthzAttributes } from '../../../src/proxy/authz/engine.js';

function policy(name: string, spec: Record<string, unknown>, target = 'backend'): AuthorizationPolicy {
  return {
    apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name },
    spec: AuthorizationPolicySpec.parse({ targetRef: { name: target }, ...spec }),
  } as AuthorizationPolicy;
}

function req(over: Partial<AuthzAttributes> = {}): AuthzAttributes {
  return {
    sourceIdentity: 'spiffe://trellis.local/service/frontend', sourceService: 'frontend',
    method: 'GET', path: '/public/x', headers: {}, ...over,
  };
}

const fromOther = { sourceIdentity: 'spiffe://trellis.local/service/other', sourceService: 'other' };

describe('authorization engine', () => {
  it('default allow admits any mesh identity, and nothing without one', () => {
    const e = compileAuthz('backend', [], 'allow');
    assert.equal(e.allowsEverything, true);
    assert.equal(e.evaluate(req()).decision, 'allow');
    assert.equal(e.evaluate(req({ sourceIdentity: undefined, sourceService: undefined })).decision, 'deny');
  });

  it('default deny denies what no ALLOW allows', () => {
    const e = compileAuthz('backend', [], 'deny');
    assert.equal(e.allowsEverything, false);
    const d = e.evaluate(req());
    assert.equal(d.decision, 'deny');
    assert.equal(d.action, 'DEFAULT');
    const withAllow = compileAuthz('backend', [policy('fe', { action: 'ALLOW', rules: [{ from: [{ services: ['frontend'] }] }] })], 'deny');
    assert.equal(withAllow.evaluate(req()).decision, 'allow');
    assert.equal(withAllow.evaluate(req(fromOther)).decision, 'deny');
  });

  it('DENY wins over ALLOW', () => {
    const e = compileAuthz('backend', [
      policy('allow-all', { action: 'ALLOW', rules: [{}] }),
      policy('deny-admin', { action: 'DENY', rules: [{ to: [{ paths: ['/admin/*'] }] }] }),
    ], 'allow');
    const d = e.evaluate(req({ path: '/admin/x' }));
    assert.deepEqual({ decision: d.decision, policy: d.policy, rule: d.rule, action: d.action }, { decision: 'deny', policy: 'deny-admin', rule: 0, action: 'DENY' });
    assert.match(d.reason, /deny-admin/);
    const ok = e.evaluate(req({ path: '/public/x' }));
    assert.deepEqual({ decision: ok.decision, policy: ok.policy, action: ok.action }, { decision: 'allow', policy: 'allow-all', action: 'ALLOW' });
  });

  it('a service with an ALLOW policy denies what no ALLOW rule matches, even under default allow', () => {
    const e = compileAuthz('backend', [policy('fe', { action: 'ALLOW', rules: [{ from: [{ services: ['frontend'] }] }] })], 'allow');
    assert.equal(e.evaluate(req()).decision, 'allow');
    const d = e.evaluate(req(fromOther));
    assert.equal(d.decision, 'deny');
    assert.equal(d.action, 'NO_ALLOW_MATCH');
    assert.equal(d.policy, undefined);
    assert.match(d.reason, /"fe"/);
  });

  it('AUDIT records would-be matches and never blocks', () => {
    const e = compileAuthz('backend', [
      policy('audit-admin', { action: 'AUDIT', rules: [{ to: [{ paths: ['/nope'] }] }, { to: [{ paths: ['/admin/*'] }] }] }),
    ], 'allow');
    const d = e.evaluate(req({ path: '/admin/x' }));
    assert.equal(d.decision, 'allow');
    assert.deepEqual(d.audits, [{ policy: 'audit-admin', rule: 1 }]);
    assert.deepEqual(e.evaluate(req({ path: '/x' })).audits, []);
    // Still recorded when the request is denied.
    const denied = compileAuthz('backend', [
      policy('audit-all', { action: 'AUDIT', rules: [{}] }),
    ], 'deny').evaluate(req());
    assert.equal(denied.decision, 'deny');
    assert.deepEqual(denied.audits, [{ policy: 'audit-all', rule: 0 }]);
    // An AUDIT policy alone does not make the service deny-by-default.
    assert.equal(compileAuthz('backend', [policy('a', { action: 'AUDIT', rules: [{}] })], 'allow').evaluate(req()).decision, 'allow');
  });

  it('a rule with no from/to/when matches everything; a policy with no rules matches nothing', () => {
    assert.equal(compileAuthz('backend', [policy('d', { action: 'DENY', rules: [{}] })], 'allow').evaluate(req()).decision, 'deny');
    assert.equal(compileAuthz('backend', [policy('d', { action: 'DENY', rules: [] })], 'allow').evaluate(req()).decision, 'allow');
    assert.equal(compileAuthz('backend', [policy('a', { action: 'ALLOW', rules: [] })], 'allow').evaluate(req()).decision, 'deny');
  });

  it('from: services and identities come from the verified identity only', () => {
    const e = compileAuthz('backend', [policy('a', { action: 'ALLOW', rules: [
      { from: [{ services: ['frontend'] }, { identities: ['spiffe://trellis.local/service/batch'] }] },
    ] })], 'allow');
    assert.equal(e.evaluate(req()).decision, 'allow');
    assert.equal(e.evaluate(req({ sourceIdentity: 'spiffe://trellis.local/service/batch', sourceService: 'batch' })).decision, 'allow');
    assert.equal(e.evaluate(req(fromOther)).decision, 'deny');
    assert.equal(e.evaluate(req({ sourceIdentity: undefined, sourceService: 'frontend' })).decision, 'deny', 'no verified identity, no service');
    assert.equal(e.evaluate(req({ headers: { 'x-trellis-peer': 'spiffe://trellis.local/service/frontend' }, ...fromOther })).decision, 'deny');
    // Both fields of one entry must hold.
    const both = compileAuthz('backend', [policy('a', { action: 'ALLOW', rules: [
      { from: [{ services: ['frontend'], identities: ['spiffe://trellis.local/service/other'] }] },
    ] })], 'allow');
    assert.equal(both.evaluate(req()).decision, 'deny');
  });

  it('to: methods, exact and prefix paths, ports', () => {
    const e = compileAuthz('backend', [policy('d', { action: 'DENY', rules: [
      { to: [{ methods: ['DELETE'] }] },
      { to: [{ paths: ['/exact'] }] },
      { to: [{ paths: ['/admin/*'] }] },
      { to: [{ methods: ['POST'], paths: ['/write*'] }] },
      { to: [{ ports: [9090] }] },
    ] })], 'allow');
    const decide = (over: Partial<AuthzAttributes>) => { const d = e.evaluate(req(over)); return d.decision === 'deny' ? d.rule : 'allow'; };
    assert.equal(decide({ method: 'DELETE' }), 0);
    assert.equal(decide({ path: '/exact' }), 1);
    assert.equal(decide({ path: '/exact/more' }), 'allow');
    assert.equal(decide({ path: '/admin/x' }), 2);
    assert.equal(decide({ path: '/admin/' }), 2);
    assert.equal(decide({ path: '/admin' }), 2, '/admin/* covers /admin itself');
    assert.equal(decide({ path: '/administrator' }), 'allow');
    assert.equal(decide({ path: '/ADMIN/x' }), 'allow', 'matching is case-sensitive');
    assert.equal(decide({ method: 'POST', path: '/writer' }), 3);
    assert.equal(decide({ method: 'GET', path: '/writer' }), 'allow', 'methods and paths of one entry must both hold');
    assert.equal(decide({ port: 9090 }), 4);
    assert.equal(decide({ port: 8080 }), 'allow');
    assert.equal(decide({ port: undefined }), 'allow', 'no known port: a ports rule never matches');
  });

  it('when: request headers (any value, repeated headers) and JWT claims (arrays, nested, numbers)', () => {
    const e = compileAuthz('backend', [policy('a', { action: 'ALLOW', rules: [
      { when: [{ key: 'request.headers[X-Tenant]', values: ['acme', 'globex'] }] },
      { when: [{ key: 'jwt.claims.groups', values: ['admins'] }] },
      { when: [{ key: 'jwt.claims.org.id', values: ['42'] }, { key: 'jwt.claims.level', values: ['3'] }] },
    ] })], 'allow');
    const rule = (over: Partial<AuthzAttributes>) => { const d = e.evaluate(req(over)); return d.decision === 'allow' ? d.rule : 'deny'; };
    assert.equal(rule({ headers: { 'x-tenant': 'acme' } }), 0);
    assert.equal(rule({ headers: { 'x-tenant': ['other', 'globex'] } }), 0);
    assert.equal(rule({ headers: { 'x-tenant': 'ACME' } }), 'deny');
    assert.equal(rule({ jwtClaims: { groups: ['users', 'admins'] } }), 1);
    assert.equal(rule({ jwtClaims: { groups: 'admins' } }), 1);
    assert.equal(rule({ jwtClaims: { groups: ['users'] } }), 'deny');
    assert.equal(rule({ jwtClaims: { org: { id: 42 }, level: 3 } }), 2, 'nested claim, numbers compare as strings; every condition holds');
    assert.equal(rule({ jwtClaims: { org: { id: 42 }, level: 2 } }), 'deny', 'every when condition must hold');
    assert.equal(rule({ jwtClaims: { 'org.id': '42', level: '3' } }), 2, 'a dotted claim name is looked up as is first');
    assert.equal(rule({}), 'deny', 'no verified claims: jwt conditions never hold');
  });

  describe('a caller without identity (plaintext, only under mtls PERMISSIVE)', () => {
    const plain = (over: Partial<AuthzAttributes> = {}) => req({ sourceIdentity: undefined, sourceService: undefined, ...over });

    it('default allow admits it under PERMISSIVE, and only there', () => {
      const permissive = compileAuthz('backend', [], 'allow', 'PERMISSIVE');
      assert.equal(permissive.allowsEverything, true, 'no filter is built: nothing to check per request');
      const d = permissive.evaluate(plain());
      assert.equal(d.decision, 'allow');
      assert.equal(d.action, 'DEFAULT');
      assert.match(d.reason, /PERMISSIVE/);
      const strict = compileAuthz('backend', [], 'allow', 'STRICT').evaluate(plain());
      assert.equal(strict.decision, 'deny');
      assert.match(strict.reason, /STRICT/);
    });

    it('default deny denies it', () => {
      const d = compileAuthz('backend', [], 'deny', 'PERMISSIVE').evaluate(plain());
      assert.equal(d.decision, 'deny');
      assert.equal(d.action, 'DEFAULT');
    });

    it('matches no rule with a `from`, not even an empty entry (any mesh identity)', () => {
      for (const from of [[{ services: ['frontend'] }], [{ identities: ['spiffe://trellis.local/service/frontend'] }], [{}]]) {
        const allow = compileAuthz('backend', [policy('a', { action: 'ALLOW', rules: [{ from }] })], 'allow', 'PERMISSIVE');
        const denied = allow.evaluate(plain({ headers: { 'x-trellis-peer': 'spiffe://trellis.local/service/frontend' } }));
        assert.equal(denied.decision, 'deny', JSON.stringify(from));
        assert.equal(denied.action, 'NO_ALLOW_MATCH');
        assert.equal(allow.evaluate(req()).decision, 'allow', 'the mesh caller matches');
        // A DENY from a source does not catch it either: it falls through to the default.
        const deny = compileAuthz('backend', [policy('d', { action: 'DENY', rules: [{ from }] })], 'allow', 'PERMISSIVE');
        assert.equal(deny.evaluate(plain()).decision, 'allow', JSON.stringify(from));
        assert.equal(deny.evaluate(req()).decision, 'deny');
      }
    });

    it('matches rules without a `from` like any caller', () => {
      const e = compileAuthz('backend', [
        policy('deny-admin', { action: 'DENY', rules: [{ to: [{ paths: ['/admin/*'] }] }] }),
        policy('allow-public', { action: 'ALLOW', rules: [{ to: [{ paths: ['/public/*'] }] }] }),
      ], 'allow', 'PERMISSIVE');
      assert.equal(e.evaluate(plain({ path: '/public/x' })).policy, 'allow-public');
      assert.equal(e.evaluate(plain({ path: '/public/x' })).decision, 'allow');
      assert.equal(e.evaluate(plain({ path: '/admin/x' })).policy, 'deny-admin');
      assert.equal(e.evaluate(plain({ path: '/other' })).decision, 'deny');
    });
  });

  it('ignores policies targeting another service', () => {
    const e = compileAuthz('backend', [policy('d', { action: 'DENY', rules: [{}] }, 'payments')], 'allow');
    assert.equal(e.allowsEverything, true);
    assert.equal(e.evaluate(req()).decision, 'allow');
  });

  it('picks the first matching DENY policy by name', () => {
    const e = compileAuthz('backend', [
      policy('z-deny', { action: 'DENY', rules: [{}] }),
      policy('a-deny', { action: 'DENY', rules: [{ to: [{ methods: ['PUT'] }] }, {}] }),
    ], 'allow');
    const d = e.evaluate(req());
    assert.equal(d.policy, 'a-deny');
    assert.equal(d.rule, 1);
  });
});
