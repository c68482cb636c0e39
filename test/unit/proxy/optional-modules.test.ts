/**
 * Modules only some configs need load when such a config arrives, before it compiles (issue #7):
 * jose's JWT verification for a JWTAuthentication, undici's pool for an HTTP/1.1 service. A proxy
 * without one never loads it. Each test file runs in its own process, so neither is loaded when this
 * file starts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { type Snapshot } from '../../../src/api/schema/snapshot.js';
import { DEFAULT_MESH_CONFIG, JWTAuthenticationSpec } from '../../../src/api/schema/resources.js';
import { JwtError } from '../../../src/proxy/authz/jwt.js';
import { ConfigApplier } from '../../../src/proxy/runtime/config-applier.js';
import { loadModulesFor } from '../../../src/proxy/runtime/optional-modules.js';
import type { ProxyServices } from '../../../src/proxy/runtime/services.js';
import { EndpointRegistry } from '../../../src/proxy/upstream/endpoint-registry.js';
import { ProxyMetrics } from '../../../src/proxy/metrics.js';
import type { Logger } from '../../../src/shared/log.js';
import { meshRequest } from '../filters/helpers.js';

const silent: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silent };

function applier(refusals: string[]): ConfigApplier {
  const services = {
    service: 'web', trustDomain: 'td', spiffeId: 'spiffe://td/service/web',
    peers: { retain: () => undefined }, endpoints: new EndpointRegistry(),
    metrics: new ProxyMetrics({ service: 'web', instance: 'w1' }), app: { forward: () => Promise.reject(new Error('no app')) }, log: silent, traces: {},
  } as unknown as ProxyServices;
  return new ConfigApplier({ services, trustDomain: 'td', probeFor: () => async () => true, onRefused: (_v, error) => refusals.push(error) });
}

function snapshot(version: string, withJwt: boolean): Snapshot {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwks = JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256', use: 'sig' }] });
  return {
    version, trustDomain: 'td', meshConfig: DEFAULT_MESH_CONFIG,
    clusters: { web: { name: 'web', protocol: 'http', endpoints: [] } },
    httpRoutes: [], tcpRoutes: [], authorizationPolicies: [],
    jwtAuthentications: withJwt ? [{
      apiVersion: 'trellis.dev/v1alpha1', kind: 'JWTAuthentication', metadata: { name: 'web-jwt' },
      spec: JWTAuthenticationSpec.parse({ targetRef: { name: 'web' }, issuer: 'https://issuer.test', jwks: { inline: jwks } }),
    }] : [],
  } as Snapshot;
}

const http1ClientLoaded = (): boolean =>
  Object.keys(createRequire(import.meta.url).cache).some((file) => file.endsWith('/undici/lib/dispatcher/pool.js'));

describe('modules loaded on demand', () => {
  it('the HTTP/1.1 client loads with the first config that has an HTTP/1.1 service, not before', () => {
    assert.equal(http1ClientLoaded(), false);
    const grpcOnly = { ...snapshot('1', false), clusters: { pay: { name: 'pay', protocol: 'grpc', endpoints: [] } } };
    assert.equal(loadModulesFor(grpcOnly), undefined);
    assert.equal(http1ClientLoaded(), false, 'a gRPC-only config does not load it');
    assert.equal(loadModulesFor(snapshot('2', false)), undefined, 'loaded synchronously: nothing to wait for');
    assert.equal(http1ClientLoaded(), true);
  });

  it('loads nothing for a config without JWTAuthentication, nor for malformed input (validation refuses it next)', () => {
    assert.equal(loadModulesFor(snapshot('1', false)), undefined);
    for (const raw of [null, undefined, 'x', 7, { jwtAuthentications: 'x' }, { jwtAuthentications: [] }]) assert.equal(loadModulesFor(raw), undefined);
    assert.equal(applier([]).prepare({ version: '1', jwtAuthentications: [] }), undefined);
  });

  it('a JWTAuthentication compiles once prepare() has loaded jose\'s verification; the version then applies and verifies tokens', async () => {
    const refusals: string[] = [];
    const a = applier(refusals);
    const raw = snapshot('7', true);
    // The contract: prepare first. Without it the version would be refused (and NACKed).
    assert.throws(() => a.apply(raw), /JWT verification is not loaded/);
    assert.equal(refusals.length, 1);
    const loading = a.prepare(raw);
    assert.ok(loading instanceof Promise, 'a config with a JWTAuthentication has something to load');
    await loading;
    assert.equal(a.apply(raw), '7');
    // The inbound chain verifies: no bearer token, required → 401 before the app.
    await assert.rejects(a.current!.inbound(meshRequest({ direction: 'inbound', destination: 'web', source: { service: 'api' } })),
      (err: unknown) => err instanceof JwtError && err.reason === 'missing');
    // Loaded once: the next version with a JWTAuthentication has nothing left to wait for.
    await a.prepare(snapshot('8', true));
    assert.equal(a.apply(snapshot('8', true)), '8');
    assert.equal(refusals.length, 1);
  });
});
