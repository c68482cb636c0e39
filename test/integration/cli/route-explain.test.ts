/**
 * `trellis route explain` against a real control plane and real proxies: a 90/10 canary over the
 * subsets v1/v2 of catalog plus a header rule `x-user: beta` → v2. The explanation is checked, and
 * checked against what the caller's proxy actually does with the same requests.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startControlPlane, stopAll, type StartedControlPlane } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

const RESOURCES = `
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: catalog}
spec: {protocol: http, port: 8080}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: frontend}
spec: {protocol: http}
---
apiVersion: trellis.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: catalog-policy}
spec:
  targetRef: {name: catalog}
  loadBalancer: {type: LeastRequest}
  outlierDetection: {consecutive5xx: 5}
  circuitBreaker: {maxConnections: 10, maxRetries: 3}
  rateLimit: {requestsPerSecond: 100}
  timeouts: {request: 5s}
`;

const ROUTE = `
apiVersion: trellis.dev/v1alpha1
kind: HTTPRoute
metadata: {name: catalog-canary}
spec:
  parentRefs: [{name: catalog}]
  rules:
    - name: beta-users
      matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-user, value: beta}]}]
      backendRefs: [{name: catalog, subset: {version: v2}}]
    - matches: [{path: {type: PathPrefix, value: /api}}]
      backendRefs:
        - {name: catalog, subset: {version: v1}, weight: 90}
        - {name: catalog, subset: {version: v2}, weight: 10}
      filters:
        - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-canary, value: "yes"}]}}
      timeouts: {backendRequest: 2s}
      retry: {attempts: 2, perTryTimeout: 500ms, on: [gateway-error]}
`;

interface Explained {
  from: string;
  matched: boolean;
  outcome: string;
  route?: { name: string; rule?: number; ruleName?: string; id: string };
  backends: Array<{ name: string; subset?: Record<string, string>; weight: number; percent: number; instances: number }>;
  filters: Array<{ type: string }>;
  timeouts: { request?: { value: string; source: string }; backendRequest?: { value: string } };
  retry?: { attempts: number; perTryTimeout?: string; on: string[]; budget: { percent: number } };
  trafficPolicy: { name?: string; loadBalancer: { type: string }; circuitBreaker?: { maxConnections?: number }; rateLimit?: { requestsPerSecond: number } };
  authorization: Array<{ service: string; allowed: boolean }>;
}

describe('trellis route explain', () => {
  let cp: StartedControlPlane;
  let api: string;
  let caller: MeshProxy;
  const apps: TestApp[] = [];

  before(async () => {
    cp = await startControlPlane();
    api = cp.api;
    const applied = await runCli(['apply', '-f', '-'], { api, stdin: RESOURCES });
    assert.equal(applied.code, 0, applied.stderr);
    const route = await runCli(['apply', '-f', '-'], { api, stdin: ROUTE });
    assert.equal(route.code, 0, route.stderr);
    const v1 = await startHttpApp('v1');
    const v2 = await startHttpApp('v2');
    const fe = await startHttpApp('frontend');
    apps.push(v1, v2, fe);
    await startMeshProxy(cp, { service: 'catalog', app: v1.address, labels: { version: 'v1' } });
    await startMeshProxy(cp, { service: 'catalog', app: v2.address, labels: { version: 'v2' } });
    caller = await startMeshProxy(cp, { service: 'frontend', app: fe.address, outbound: ['catalog'] });
    await waitForEndpoints(caller, 'catalog', 2);
    await eventually(async () => (await client(cp).describeService('catalog')).instances.filter((i) => i.connected).length === 2, 10_000, 'two catalog instances');
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  const explain = (...args: string[]) => runCli(['route', 'explain', '--from', 'frontend', '--to', 'catalog', ...args], { api });

  it('explains the canary rule: 90/10 over v1/v2, instances, filters, timeouts, retry, policy', async () => {
    const table = await explain('GET', '/api/items');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /route matched: HTTPRoute\/catalog-canary rule 1/);
    assert.match(table.stdout, /catalog\s+version=v1\s+90\s+90%\s+1/);
    assert.match(table.stdout, /catalog\s+version=v2\s+10\s+10%\s+1/);
    assert.match(table.stdout, /RequestHeaderModifier: set x-canary: yes/);
    assert.match(table.stdout, /request 5s \(TrafficPolicy\/catalog-policy\)/);
    assert.match(table.stdout, /LeastRequest/);

    const json = await explain('GET', '/api/items', '-o', 'json');
    assert.equal(json.code, 0, json.stderr);
    const r = JSON.parse(json.stdout) as Explained;
    assert.equal(r.matched, true);
    assert.equal(r.from, 'frontend');
    assert.equal(r.route?.id, 'catalog-canary/1');
    assert.deepEqual(r.backends.map((b) => [b.subset, b.weight, b.percent, b.instances]), [
      [{ version: 'v1' }, 90, 90, 1],
      [{ version: 'v2' }, 10, 10, 1],
    ]);
    assert.deepEqual(r.filters.map((f) => f.type), ['RequestHeaderModifier']);
    assert.deepEqual(r.timeouts.request, { value: '5s', ms: 5000, source: 'TrafficPolicy/catalog-policy' });
    assert.equal(r.timeouts.backendRequest?.value, '2s');
    assert.equal(r.retry?.attempts, 2);
    assert.equal(r.retry?.perTryTimeout, '500ms');
    assert.deepEqual(r.retry?.on, ['gateway-error']);
    assert.equal(r.retry?.budget.percent, 20);
    assert.equal(r.trafficPolicy.name, 'catalog-policy');
    assert.equal(r.trafficPolicy.loadBalancer.type, 'LeastRequest');
    assert.equal(r.trafficPolicy.circuitBreaker?.maxConnections, 10);
    assert.equal(r.trafficPolicy.rateLimit?.requestsPerSecond, 100);
    assert.deepEqual(r.authorization.map((a) => [a.service, a.allowed]), [['catalog', true]]);

    const yaml = await explain('GET', '/api/items', '-o', 'yaml');
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.match(yaml.stdout, /id: catalog-canary\/1/);
  });

  it('explains the header rule: x-user: beta → v2 only', async () => {
    const json = await explain('GET', '/api/items', '--header', 'x-user=beta', '-o', 'json');
    assert.equal(json.code, 0, json.stderr);
    const r = JSON.parse(json.stdout) as Explained;
    assert.equal(r.route?.id, 'catalog-canary/0');
    assert.equal(r.route?.ruleName, 'beta-users');
    assert.deepEqual(r.backends.map((b) => [b.subset, b.percent, b.instances]), [[{ version: 'v2' }, 100, 1]]);
    assert.equal(r.retry, undefined);
    assert.deepEqual(r.filters, []);

    const table = await explain('GET', '/api/other', '--header', 'x-user=beta');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /rule 0 \(beta-users\)/);
    assert.match(table.stdout, /path PathPrefix \/api, header x-user: beta/);
  });

  it('says NO_ROUTE and exits 1 when no rule matches', async () => {
    const res = await explain('GET', '/nothing');
    assert.equal(res.code, 1, res.stdout + res.stderr);
    assert.match(res.stdout, /no route matches → 404 NO_ROUTE/);
    const json = await explain('GET', '/nothing', '-o', 'json');
    assert.equal(json.code, 1);
    assert.equal((JSON.parse(json.stdout) as Explained).outcome, 'NO_ROUTE');
  });

  it('agrees with what the proxy does', async () => {
    for (let i = 0; i < 10; i++) {
      const beta = await httpGet(caller.outbound.catalog!, '/api/items', { 'x-user': 'beta' });
      assert.equal(beta.headers['x-app'], 'v2');
    }
    const none = await httpGet(caller.outbound.catalog!, '/nothing');
    assert.equal(none.status, 404);
    assert.equal(none.headers['x-trellis-error'], 'NO_ROUTE');
  });

  it('fails with exit 2 for an unknown service', async () => {
    const res = await runCli(['route', 'explain', '--from', 'frontend', '--to', 'nope', 'GET', '/'], { api });
    assert.equal(res.code, 2);
    assert.match(res.stderr, /unknown service "nope"/);
  });
});
