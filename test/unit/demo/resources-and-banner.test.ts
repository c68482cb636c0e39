/**
 * The demo's configuration is valid for the real schema and its AuthorizationPolicy decides as the demo
 * says (the proxy's own engine, via can-i); the start-up banner prints the bound URL and what to try next.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Resource, type ResourceOf } from '../../../src/api/schema/resources.js';
import { decideCanI } from '../../../src/cli/commands/can-i.js';
import { banner } from '../../../src/demo/banner.js';
import { AUTHORIZE_PATH } from '../../../src/demo/payments-grpc.js';
import { CANARY_ROUTE, CATALOG_POLICY, PAYMENTS_AUTHZ, SERVICES } from '../../../src/demo/resources.js';

describe('demo resources', () => {
  it('are valid resources, payments declared gRPC', () => {
    for (const r of [...SERVICES, CANARY_ROUTE, CATALOG_POLICY, PAYMENTS_AUTHZ]) {
      const parsed = Resource.safeParse(r);
      assert.ok(parsed.success, `${r.kind}/${r.metadata.name}: ${parsed.success ? '' : parsed.error.message}`);
    }
    assert.deepEqual(SERVICES.map((s) => s.metadata.name).sort(), ['catalog', 'checkout', 'inventory', 'loadgen', 'payments', 'rogue', 'web']);
    assert.equal(SERVICES.find((s) => s.metadata.name === 'payments')!.spec.protocol, 'grpc');
  });

  it('lets checkout, and only checkout, call Payments/Authorize', () => {
    const policy = Resource.parse(PAYMENTS_AUTHZ) as ResourceOf<'AuthorizationPolicy'>;
    const decide = (from: string, method: string, path: string) => decideCanI({
      from, to: 'payments', method, path, headers: {}, trustDomain: 'trellis.local',
      authorizationPolicies: [policy], jwtAuthentications: [], defaultAction: 'allow',
    });
    assert.equal(decide('checkout', 'POST', AUTHORIZE_PATH).allowed, true);
    for (const [from, method, path] of [['rogue', 'POST', AUTHORIZE_PATH], ['web', 'POST', AUTHORIZE_PATH],
      ['checkout', 'POST', '/trellis.demo.payments.v1.Payments/Refund'], ['checkout', 'GET', AUTHORIZE_PATH]] as const) {
      const d = decide(from, method, path);
      assert.equal(d.allowed, false, `${from} ${method} ${path}`);
      assert.equal(d.status, 403);
    }
  });
});

describe('demo banner', () => {
  const base = { httpProxy: '127.0.0.1:40000', rate: 10, startupMs: 6543 };

  it('prints the bound dashboard URL and exports it for the CLI when it is not the default', () => {
    const text = banner({ ...base, api: '127.0.0.1:41233' });
    assert.match(text, /Dashboard: +http:\/\/127\.0\.0\.1:41233\//);
    assert.match(text, /export TRELLIS_API=http:\/\/127\.0\.0\.1:41233/);
    assert.match(text, /traffic flowing 6\.5s after launch/);
    for (const cmd of ['npx trellis stat', 'npx trellis top', 'npx trellis tap catalog', `npx trellis can-i --from rogue --to payments POST ${AUTHORIZE_PATH}`,
      'curl -s http://127.0.0.1:41233/api/v1/denials', 'npx trellis get httproute catalog-canary -o yaml > canary.yaml', 'npx trellis apply -f canary.yaml']) {
      assert.ok(text.includes(cmd), cmd);
    }
  });

  it('needs no export on the default address, and mentions --duration', () => {
    const text = banner({ ...base, api: '127.0.0.1:15000', durationMs: 60_000 });
    assert.ok(!text.includes('export TRELLIS_API'));
    assert.match(text, /Dashboard: +http:\/\/127\.0\.0\.1:15000\//);
    assert.match(text, /stops by itself after 60s/);
  });
});
