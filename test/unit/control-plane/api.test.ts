import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isAuthorized, requiresAdminToken } from '../../../src/control-plane/adapters/api/server.js';
import { buildOpenApiDocument } from '../../../src/control-plane/adapters/api/openapi.js';
import { resolveKind } from '../../../src/control-plane/core/kinds.js';

describe('admin token decision', () => {
  it('requires the token unless the API is bound to loopback', () => {
    assert.equal(requiresAdminToken('127.0.0.1'), false);
    assert.equal(requiresAdminToken('127.0.0.2'), false);
    assert.equal(requiresAdminToken('::1'), false);
    assert.equal(requiresAdminToken('localhost'), false);
    assert.equal(requiresAdminToken('0.0.0.0'), true);
    assert.equal(requiresAdminToken('::'), true);
    assert.equal(requiresAdminToken('10.1.2.3'), true);
    assert.equal(requiresAdminToken('cp.example.com'), true);
  });

  it('accepts exactly "Bearer <admin token>"', () => {
    assert.equal(isAuthorized('Bearer s3cret', 's3cret'), true);
    assert.equal(isAuthorized('bearer s3cret', 's3cret'), true);
    assert.equal(isAuthorized('Bearer s3cret2', 's3cret'), false);
    assert.equal(isAuthorized('Bearer ', 's3cret'), false);
    assert.equal(isAuthorized('Basic s3cret', 's3cret'), false);
    assert.equal(isAuthorized(undefined, 's3cret'), false);
    assert.equal(isAuthorized('Bearer x', ''), false);
  });
});

describe('OpenAPI document', () => {
  it('is OpenAPI 3.1 generated from the zod schemas', () => {
    const doc = buildOpenApiDocument() as { openapi: string; paths: Record<string, unknown>; components: { schemas: Record<string, { oneOf?: unknown[] }> } };
    assert.equal(doc.openapi, '3.1.0');
    for (const p of ['/api/v1/apply', '/api/v1/resources/{kind}', '/api/v1/resources/{kind}/{name}', '/api/v1/tokens', '/api/v1/services', '/api/v1/services/{name}', '/api/v1/proxies']) {
      assert.ok(doc.paths[p], `path ${p}`);
    }
    assert.equal(doc.components.schemas.Resource!.oneOf?.length, 8, 'one branch per kind');
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(doc)));
  });
});

describe('kind names', () => {
  it('are case-insensitive and accept plurals', () => {
    assert.equal(resolveKind('services'), 'Service');
    assert.equal(resolveKind('Service'), 'Service');
    assert.equal(resolveKind('httproutes'), 'HTTPRoute');
    assert.equal(resolveKind('TrafficPolicies'), 'TrafficPolicy');
    assert.equal(resolveKind('authorizationpolicy'), 'AuthorizationPolicy');
    assert.equal(resolveKind('meshconfig'), 'MeshConfig');
    assert.equal(resolveKind('rollouts'), 'Rollout');
    assert.equal(resolveKind('jwtauthentications'), 'JWTAuthentication');
    assert.equal(resolveKind('gateways'), undefined);
  });
});
