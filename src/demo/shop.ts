/**
 * The demo application: a small shop, each service a server on 127.0.0.1:0 in the demo process, each
 * instance behind its own sidecar. A service reaches another only through its own sidecar, so every hop
 * crosses the mesh over mTLS:
 *
 *   web ─HTTP─▶ catalog (v1 | v2) ─HTTP─▶ inventory
 *   web ─HTTP─▶ checkout ─gRPC─▶ payments
 *   rogue ─gRPC─▶ payments   (refused by the AuthorizationPolicy: only checkout may pay)
 *
 * loadgen (traffic.ts) sends the steady traffic to web; rogue (rogue.ts) is the caller the policy refuses.
 *
 * HTTP hops use the sidecar's --http-proxy listener (absolute-form request http://NAME/PATH, as an
 * HTTP_PROXY client sends it); the gRPC hop uses the sidecar's --outbound payments listener (h2c).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Protocol } from '../api/schema/common.js';
import { PaymentsClient, startPaymentsServer } from './payments-grpc.js';

/** One instance of the shop: its service, version label, app protocol and the services it calls over gRPC. */
export interface ShopInstance {
  service: string;
  version: string;
  protocol: Protocol;
  /** Services this instance calls through an --outbound NAME listener of its sidecar (the gRPC hop). */
  outbound: string[];
}

/**
 * The demo's instances, each with its own sidecar: the shop (catalog twice: v1 and the v2 canary), the
 * traffic generator (loadgen) and the caller the AuthorizationPolicy refuses (rogue).
 */
export const SHOP_INSTANCES: readonly ShopInstance[] = [
  { service: 'inventory', version: 'v1', protocol: 'http', outbound: [] },
  { service: 'payments', version: 'v1', protocol: 'grpc', outbound: [] },
  { service: 'catalog', version: 'v1', protocol: 'http', outbound: [] },
  { service: 'catalog', version: 'v2', protocol: 'http', outbound: [] },
  { service: 'checkout', version: 'v1', protocol: 'http', outbound: ['payments'] },
  { service: 'web', version: 'v1', protocol: 'http', outbound: [] },
  { service: 'rogue', version: 'v1', protocol: 'http', outbound: ['payments'] },
  { service: 'loadgen', version: 'v1', protocol: 'http', outbound: [] },
];

export interface HopResult { status: number; body: unknown }

/** One HTTP request through a sidecar's HTTP proxy listener, as an HTTP_PROXY client sends it. */
export function requestViaProxy(proxy: string, agent: http.Agent, service: string, path: string, timeoutMs = 5000): Promise<HopResult> {
  const colon = proxy.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: proxy.slice(0, colon),
      port: Number(proxy.slice(colon + 1)),
      method: 'GET',
      path: `http://${service}${path}`,
      headers: { host: service, accept: 'application/json' },
      agent,
      timeout: timeoutMs,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try { body = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs}ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The listeners of an instance's sidecar its app calls through. */
export interface SidecarListeners {
  httpProxy: string;
  /** service -> HOST:PORT of the --outbound listeners. */
  outbound: Record<string, string>;
}

export interface ShopApp {
  service: string;
  labels: Record<string, string>;
  /** Where the app listens (the sidecar's --app). */
  address: string;
  /** Called once the sidecar announced its listeners; until then, calls to other services answer 503. */
  attach(sidecar: SidecarListeners): void;
  close(): Promise<void>;
}

/** What a handler may call: HTTP services through the sidecar's HTTP proxy, payments over gRPC. */
interface Calls {
  http(service: string, path: string): Promise<HopResult>;
  payments(): PaymentsClient | undefined;
}

type Handler = (calls: Calls, path: string) => Promise<HopResult>;

const ITEMS = [
  { sku: 'TRL-001', name: 'Trellis panel', price: 24.0 },
  { sku: 'TRL-002', name: 'Climbing rose', price: 12.5 },
  { sku: 'TRL-003', name: 'Garden twine', price: 3.2 },
];

function downstreamFailed(service: string, r: HopResult): HopResult {
  return { status: 502, body: { error: `${service} answered ${r.status}`, detail: r.body } };
}

const HTTP_HANDLERS: Record<string, (version: string) => Handler> = {
  web: () => async (calls, path) => {
    if (path !== '/' && !path.startsWith('/?')) return { status: 404, body: { error: 'not found' } };
    const [catalog, checkout] = await Promise.all([calls.http('catalog', '/items'), calls.http('checkout', '/checkout')]);
    if (catalog.status !== 200) return downstreamFailed('catalog', catalog);
    if (checkout.status !== 200) return downstreamFailed('checkout', checkout);
    const cat = catalog.body as { version?: string };
    return { status: 200, body: { service: 'web', catalogVersion: cat.version, catalog: catalog.body, checkout: checkout.body } };
  },
  catalog: (version) => async (calls) => {
    const inv = await calls.http('inventory', '/stock');
    if (inv.status !== 200) return downstreamFailed('inventory', inv);
    const stock = (inv.body as { stock: Record<string, number> }).stock;
    const items = ITEMS.map((i) => ({
      ...i,
      stock: stock[i.sku] ?? 0,
      // v2 is the canary: same items, plus a rating and a currency.
      ...(version === 'v2' ? { rating: 4 + (i.sku.charCodeAt(6) % 10) / 10, currency: 'EUR' } : {}),
    }));
    return { status: 200, body: { service: 'catalog', version, items } };
  },
  inventory: () => async () => ({
    status: 200,
    body: { service: 'inventory', stock: Object.fromEntries(ITEMS.map((i, n) => [i.sku, 10 + n * 7])) },
  }),
  checkout: () => async (calls) => {
    const payments = calls.payments();
    if (!payments) return { status: 503, body: { error: 'sidecar not ready' } };
    // A cart of one to three items; its total is authorized by payments over gRPC.
    const cart = ITEMS.slice(0, 1 + Math.floor(Math.random() * ITEMS.length));
    const orderId = `ord-${Math.random().toString(36).slice(2, 10)}`;
    const amountCents = Math.round(cart.reduce((sum, i) => sum + i.price, 0) * 100);
    const pay = await payments.authorize({ orderId, amountCents, currency: 'EUR' });
    if (!pay.ok) return { status: 502, body: { error: `payments answered gRPC ${pay.status}`, detail: pay.details } };
    return { status: 200, body: { service: 'checkout', order: orderId, items: cart.length, payment: { transport: 'grpc', ...pay.reply } } };
  },
};

/** A JSON-over-HTTP server on 127.0.0.1:0 (GET /healthz answers 200). */
export async function serveJson(handle: (path: string) => Promise<HopResult>): Promise<{ address: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    const reply = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (path === '/healthz') { reply(200, { ok: true }); return; }
    handle(path).then((r) => reply(r.status, r.body), (err: Error) => reply(500, { error: err.message }));
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  const addr = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${addr.port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/** Starts one shop instance's app on 127.0.0.1:0: payments is a gRPC server, the others HTTP. */
export async function startShopApp(service: string, version: string): Promise<ShopApp> {
  if (service === 'payments') {
    const server = await startPaymentsServer();
    return { service, labels: { version }, address: server.address, attach: () => undefined, close: () => server.close() };
  }
  const make = HTTP_HANDLERS[service];
  if (!make) throw new Error(`unknown demo service ${service}`);
  const handler = make(version);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let sidecar: SidecarListeners | undefined;
  let payments: PaymentsClient | undefined;
  const calls: Calls = {
    http: (target, path) => {
      if (!sidecar) return Promise.resolve({ status: 503, body: { error: 'sidecar not ready' } });
      return requestViaProxy(sidecar.httpProxy, agent, target, path).catch((err: Error) => ({ status: 502, body: { error: err.message } }));
    },
    payments: () => payments,
  };
  const server = await serveJson((path) => handler(calls, path));
  return {
    service,
    labels: { version },
    address: server.address,
    attach(listeners) {
      sidecar = listeners;
      const paymentsAt = listeners.outbound.payments;
      if (paymentsAt && !payments) payments = new PaymentsClient(paymentsAt);
    },
    close: async () => {
      payments?.close();
      agent.destroy();
      await server.close();
    },
  };
}
