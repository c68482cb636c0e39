import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HTTPRouteResource, TrafficPolicyResource, type ResourceOf } from '../../../src/api/schema/resources.js';
import { explainRoute, type ExplainInput } from '../../../src/proxy/routing/explain.js';

const API = 'trellis.dev/v1alpha1';

/** Routes are parsed with the real schema, so defaults (weights, retry on…) are what the API serves. */
function route(name: string, rules: unknown[], parent = 'catalog'): ResourceOf<'HTTPRoute'> {
  return HTTPRouteResource.parse({ apiVersion: API, kind: 'HTTPRoute', metadata: { name }, spec: { parentRefs: [{ name: parent }], rules } }) as ResourceOf<'HTTPRoute'>;
}
function policy(name: string, spec: Record<string, unknown>): ResourceOf<'TrafficPolicy'> {
  return TrafficPolicyResource.parse({ apiVersion: API, kind: 'TrafficPolicy', metadata: { name }, spec: { targetRef: { name: 'catalog' }, ...spec } }) as ResourceOf<'TrafficPolicy'>;
}
const to = (subset: Record<string, string>, weight?: number) => ({ name: 'catalog', subset, ...(weight !== undefined ? { weight } : {}) });
const v1 = { version: 'v1' };
const v2 = { version: 'v2' };

function explain(routes: ResourceOf<'HTTPRoute'>[], method: string, path: string, headers: Record<string, string> = {}, extra: Partial<ExplainInput> = {}) {
  return explainRoute({ service: 'catalog', routes, request: { method, path, headers }, ...extra });
}

describe('explainRoute', () => {
  const canary = route('catalog-routes', [
    { matches: [{ headers: [{ name: 'x-user', value: 'beta' }] }], backendRefs: [to(v2)] },
    { matches: [{ path: { type: 'PathPrefix', value: '/api' } }], backendRefs: [to(v1, 90), to(v2, 10)] },
    { matches: [{ path: { type: 'PathPrefix', value: '/api/admin' } }], backendRefs: [to(v1)] },
    { matches: [{ path: { type: 'Exact', value: '/api/admin/x' } }], backendRefs: [to(v2)] },
    { matches: [{ path: { type: 'PathPrefix', value: '/q' }, queryParams: [{ name: 'variant', value: 'b' }] }], backendRefs: [to(v2)] },
  ]);

  test('Exact beats PathPrefix', () => {
    const r = explain([canary], 'GET', '/api/admin/x');
    assert.equal(r.matched, true);
    assert.equal(r.route?.rule, 3);
    assert.deepEqual(r.route?.match?.path, { type: 'Exact', value: '/api/admin/x' });
  });

  test('equal matches in two routes: the route whose name comes first in code-point order wins', () => {
    const rules = [{ matches: [{ path: { type: 'PathPrefix', value: '/same' } }], backendRefs: [to(v1)] }];
    // "team-a-2" < "team-a2" in code points ('-' is 0x2d, '2' is 0x32), whatever order they are given in.
    const routes = [route('team-a2', rules), route('team-a-2', rules)];
    assert.equal(explain(routes, 'GET', '/same').route?.id, 'team-a-2/0');
    assert.equal(explain([...routes].reverse(), 'GET', '/same').route?.id, 'team-a-2/0');
  });

  test('the longer prefix wins', () => {
    const r = explain([canary], 'GET', '/api/admin/y');
    assert.equal(r.route?.id, 'catalog-routes/2');
    assert.equal(explain([canary], 'GET', '/api/other').route?.id, 'catalog-routes/1');
    // a prefix matches whole segments only
    assert.equal(explain([canary], 'GET', '/apiary').matched, false);
  });

  test('a header-matched rule, and headers are matched case-insensitively by name', () => {
    const r = explain([canary], 'GET', '/anything', { 'X-User': 'beta' });
    assert.equal(r.route?.id, 'catalog-routes/0');
    assert.deepEqual(r.backends.map((b) => [b.subset, b.percent]), [[v2, 100]]);
    assert.deepEqual(r.route?.match?.headers, [{ name: 'x-user', value: 'beta', type: 'Exact' }]);
    // Gateway API order: path first. A header-only match is PathPrefix "/", so a longer prefix beats it…
    assert.equal(explain([canary], 'GET', '/api/x', { 'x-user': 'beta' }).route?.id, 'catalog-routes/1');
    // …and with the same path, more header matches win.
    const sameRoute = route('r', [
      { matches: [{ path: { type: 'PathPrefix', value: '/api' } }], backendRefs: [to(v1, 90), to(v2, 10)] },
      { matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-user', value: 'beta' }] }], backendRefs: [to(v2)] },
    ]);
    assert.equal(explain([sameRoute], 'GET', '/api/x', { 'x-user': 'beta' }).route?.id, 'r/1');
    assert.equal(explain([sameRoute], 'GET', '/api/x', { 'x-user': 'alpha' }).route?.id, 'r/0');
    // x-trellis-* headers never reach the route table (the proxy strips them at ingress)
    const stripped = explainRoute({
      service: 'catalog', request: { method: 'GET', path: '/' , headers: { 'x-trellis-peer': 'a' } },
      routes: [route('r', [{ matches: [{ headers: [{ name: 'x-trellis-peer', value: 'a' }] }] }])],
    });
    assert.equal(stripped.outcome, 'NO_ROUTE');
  });

  test('query parameters', () => {
    assert.equal(explain([canary], 'GET', '/q/list?variant=b&x=1').route?.id, 'catalog-routes/4');
    assert.equal(explain([canary], 'GET', '/q/list?variant=a').matched, false);
  });

  test('no matching rule → NO_ROUTE 404, with the rules that were tried', () => {
    const r = explain([canary], 'GET', '/nothing');
    assert.equal(r.matched, false);
    assert.equal(r.outcome, 'NO_ROUTE');
    assert.equal(r.status, 404);
    assert.deepEqual(r.backends, []);
    assert.equal(r.candidates.length, 5);
  });

  test('a path the proxy refuses → BAD_REQUEST 400; a path is matched normalised', () => {
    const bad = explain([canary], 'GET', '/..');
    assert.equal(bad.outcome, 'BAD_REQUEST');
    assert.equal(bad.status, 400);
    const r = explain([canary], 'GET', '//api/./admin/x');
    assert.equal(r.request.normalisedPath, '/api/admin/x');
    assert.equal(r.route?.rule, 3);
  });

  test('weights become percentages, and instances are counted per subset', () => {
    const r = explain([canary], 'GET', '/api/items', {}, {
      instances: {
        catalog: [
          { labels: { version: 'v1', zone: 'a' } }, { labels: { version: 'v1' } },
          { labels: { version: 'v2' } }, { labels: { version: 'v2' }, draining: true }, { labels: {} },
        ],
      },
    });
    assert.deepEqual(r.backends.map((b) => ({ subset: b.subset, weight: b.weight, percent: b.percent, instances: b.instances, draining: b.draining })), [
      { subset: v1, weight: 90, percent: 90, instances: 2, draining: 0 },
      { subset: v2, weight: 10, percent: 10, instances: 1, draining: 1 },
    ]);
    const thirds = explain([route('r', [{ backendRefs: [to(v1, 1), to(v2, 2), to({ version: 'v3' }, 0)] }])], 'GET', '/');
    assert.deepEqual(thirds.backends.map((b) => b.percent), [33.33, 66.67, 0]);
  });

  test('without an HTTPRoute everything goes to the service itself (the default rule)', () => {
    const r = explain([route('other', [{}], 'elsewhere')], 'POST', '/x', {}, { instances: { catalog: [{ labels: {} }] } });
    assert.equal(r.matched, true);
    assert.equal(r.route?.id, 'default');
    assert.equal(r.route?.rule, undefined);
    assert.deepEqual(r.backends, [{ name: 'catalog', weight: 1, percent: 100, instances: 1, draining: 0 }]);
    assert.equal(r.trafficPolicy.loadBalancer.type, 'RoundRobin');
    assert.deepEqual(r.trafficPolicy.retryBudget, { percent: 20, minRetriesPerSecond: 10, source: 'default' });
  });

  test('timeouts: the rule\'s request timeout, else the TrafficPolicy\'s; 0s means none', () => {
    const tp = policy('catalog-policy', { timeouts: { request: '3s', connect: '500ms' } });
    const routes = [route('r', [
      { matches: [{ path: { type: 'Exact', value: '/own' } }], timeouts: { request: '1s', backendRequest: '400ms' } },
      { matches: [{ path: { type: 'Exact', value: '/inherit' } }] },
      { matches: [{ path: { type: 'Exact', value: '/off' } }], timeouts: { request: '0s' } },
    ])];
    const own = explain(routes, 'GET', '/own', {}, { trafficPolicy: tp });
    assert.deepEqual(own.timeouts.request, { value: '1s', ms: 1000, source: 'route' });
    assert.deepEqual(own.timeouts.backendRequest, { value: '400ms', ms: 400, source: 'route' });
    assert.equal(own.timeouts.connect, '500ms');
    const inherit = explain(routes, 'GET', '/inherit', {}, { trafficPolicy: tp });
    assert.deepEqual(inherit.timeouts.request, { value: '3s', ms: 3000, source: 'TrafficPolicy/catalog-policy' });
    assert.equal(inherit.timeouts.backendRequest, undefined);
    assert.equal(explain(routes, 'GET', '/off', {}, { trafficPolicy: tp }).timeouts.request, undefined);
    assert.equal(explain(routes, 'GET', '/inherit').timeouts.request, undefined);
  });

  test('retry settings, defaults, budget and the idempotent-method rule', () => {
    const tp = policy('p', { retryBudget: { percent: 50 }, circuitBreaker: { maxRetries: 4 } });
    const routes = [route('r', [{ retry: { attempts: 3, perTryTimeout: '200ms', on: ['5xx', 'retriable-status-codes'], codes: [409] } }])];
    const get = explain(routes, 'GET', '/', {}, { trafficPolicy: tp });
    assert.deepEqual(get.retry, {
      attempts: 3, maxTries: 4, perTryTimeout: '200ms', backoff: '25ms', on: ['5xx', 'retriable-status-codes'], codes: [409],
      appliesToMethod: true, budget: { percent: 50, minRetriesPerSecond: 10, source: 'TrafficPolicy/p' }, maxConcurrentRetries: 4,
    });
    assert.equal(explain(routes, 'POST', '/', {}, { trafficPolicy: tp }).retry?.appliesToMethod, false);
    const defaults = explain([route('r', [{ retry: {} }])], 'GET', '/');
    assert.equal(defaults.retry?.attempts, 2);
    assert.deepEqual(defaults.retry?.on, ['connect-failure', 'reset', 'gateway-error']);
    assert.equal(explain([route('r', [{}])], 'GET', '/').retry, undefined);
  });

  test('filters, mirror and the destination TrafficPolicy', () => {
    const routes = [route('r', [{
      filters: [
        { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-a', value: '1' }] } },
        { type: 'FaultInjection', faultInjection: { abort: { status: 503, percent: 10 } } },
        { type: 'RequestMirror', requestMirror: { backendRef: { name: 'shadow' }, percent: 25 } },
      ],
    }])];
    const tp = policy('p', {
      loadBalancer: { type: 'RingHash', hashOn: { header: 'x-user' } },
      healthCheck: { http: { path: '/healthz' } },
      rateLimit: { requestsPerSecond: 2.5, perSource: true },
      circuitBreaker: { maxConnections: 2 },
    });
    const r = explain(routes, 'GET', '/', {}, { trafficPolicy: tp, instances: { shadow: [{ labels: {} }, { labels: {} }] } });
    assert.deepEqual(r.filters.map((f) => f.type), ['RequestHeaderModifier', 'FaultInjection', 'RequestMirror']);
    assert.deepEqual(r.mirror, { name: 'shadow', percent: 25, instances: 2, draining: 0 });
    assert.deepEqual(r.trafficPolicy.loadBalancer, { type: 'RingHash', hashOn: { header: 'x-user' } });
    assert.equal(r.trafficPolicy.healthCheck?.interval, '10s');
    assert.deepEqual(r.trafficPolicy.circuitBreaker, { maxConnections: 2 });
    assert.equal(r.trafficPolicy.rateLimit?.burst, 3);
    assert.equal(r.trafficPolicy.rateLimit?.perSource, true);
    assert.ok('default' in r.trafficPolicy.outlierDetection!);
  });

  test('rules across routes follow route-name order when otherwise equal', () => {
    const a = route('a-route', [{ matches: [{ path: { type: 'PathPrefix', value: '/x' } }], backendRefs: [to(v1)] }]);
    const b = route('b-route', [{ matches: [{ path: { type: 'PathPrefix', value: '/x' } }], backendRefs: [to(v2)] }]);
    assert.equal(explain([b, a], 'GET', '/x/1').route?.name, 'a-route');
    const m = route('m-route', [{ matches: [{ path: { type: 'PathPrefix', value: '/x' }, method: 'DELETE' }], backendRefs: [to(v2)] }]);
    assert.equal(explain([a, m], 'DELETE', '/x/1').route?.name, 'm-route');
    assert.equal(explain([a, m], 'delete', '/x/1').route?.name, 'm-route');
  });
});
