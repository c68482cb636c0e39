/**
 * The mesh configuration the demo applies through the API before any sidecar starts, so every proxy's
 * first snapshot already has it: the shop's Services, the catalog canary, catalog's TrafficPolicy and the
 * AuthorizationPolicy that lets only checkout call payments.
 */
import { AUTHORIZE_PATH } from './payments-grpc.js';
import { SHOP_INSTANCES } from './shop.js';

/** The shop's services, declared up front so routes and policies can name them before instances join. */
export const SERVICES = [...new Map(SHOP_INSTANCES.map((i) => [i.service, i.protocol])).entries()].map(([name, protocol]) => ({
  apiVersion: 'trellis.dev/v1alpha1',
  kind: 'Service',
  metadata: { name, labels: { app: 'trellis-demo' } },
  spec: { protocol },
}));

export const CANARY_ROUTE = {
  apiVersion: 'trellis.dev/v1alpha1',
  kind: 'HTTPRoute',
  metadata: { name: 'catalog-canary', labels: { app: 'trellis-demo' } },
  spec: {
    parentRefs: [{ name: 'catalog' }],
    rules: [{
      name: 'canary',
      backendRefs: [
        { name: 'catalog', subset: { version: 'v1' }, weight: 90 },
        { name: 'catalog', subset: { version: 'v2' }, weight: 10 },
      ],
    }],
  },
};

export const CATALOG_POLICY = {
  apiVersion: 'trellis.dev/v1alpha1',
  kind: 'TrafficPolicy',
  metadata: { name: 'catalog-lb', labels: { app: 'trellis-demo' } },
  spec: { targetRef: { name: 'catalog' }, loadBalancer: { type: 'EWMA' } },
};

/** Only checkout may authorize payments, and only through Payments/Authorize: anyone else gets PERMISSION_DENIED. */
export const PAYMENTS_AUTHZ = {
  apiVersion: 'trellis.dev/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'payments-allow-checkout', labels: { app: 'trellis-demo' } },
  spec: {
    targetRef: { name: 'payments' },
    action: 'ALLOW',
    rules: [{ from: [{ services: ['checkout'] }], to: [{ methods: ['POST'], paths: [AUTHORIZE_PATH] }] }],
  },
};
