/**
 * The demo application: a small shop of HTTP services, each a node:http server on 127.0.0.1:0 in the
 * demo process. A service reaches the next one only through its own sidecar's --http-proxy listener
 * (absolute-form request http://NAME/PATH), so every hop crosses the mesh over mTLS:
 *
 *   web ─▶ catalog (v1 | v2) ─▶ inventory
 *   web ─▶ checkout ─▶ payments
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

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

export interface ShopApp {
  service: string;
  labels: Record<string, string>;
  /** Where the app listens (the sidecar's --app). */
  address: string;
  /** Set once the sidecar announced its --http-proxy listener. */
  httpProxy?: string;
  close(): Promise<void>;
}

type Handler = (call: (service: string, path: string) => Promise<HopResult>, path: string) => Promise<{ status: number; body: unknown }>;

const ITEMS = [
  { sku: 'TRL-001', name: 'Trellis panel', price: 24.0 },
  { sku: 'TRL-002', name: 'Climbing rose', price: 12.5 },
  { sku: 'TRL-003', name: 'Garden twine', price: 3.2 },
];

function downstreamFailed(service: string, r: HopResult): { status: number; body: unknown } {
  return { status: 502, body: { error: `${service} answered ${r.status}`, detail: r.body } };
}

const HANDLERS: Record<string, (version: string) => Handler> = {
  web: () => async (call, path) => {
    if (path !== '/' && !path.startsWith('/?')) return { status: 404, body: { error: 'not found' } };
    const [catalog, checkout] = await Promise.all([call('catalog', '/items'), call('checkout', '/checkout')]);
    if (catalog.status !== 200) return downstreamFailed('catalog', catalog);
    if (checkout.status !== 200) return downstreamFailed('checkout', checkout);
    const cat = catalog.body as { version?: string };
    return { status: 200, body: { service: 'web', catalogVersion: cat.version, catalog: catalog.body, checkout: checkout.body } };
  },
  catalog: (version) => async (call) => {
    const inv = await call('inventory', '/stock');
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
  checkout: () => async (call) => {
    const pay = await call('payments', '/authorize');
    if (pay.status !== 200) return downstreamFailed('payments', pay);
    return { status: 200, body: { service: 'checkout', order: `ord-${Math.random().toString(36).slice(2, 10)}`, payment: pay.body } };
  },
  payments: () => async () => ({
    status: 200,
    body: { service: 'payments', authorized: true, authorization: `auth-${Math.random().toString(36).slice(2, 10)}` },
  }),
};

export const SHOP_SERVICES = ['web', 'catalog', 'inventory', 'checkout', 'payments'] as const;

/** Starts one shop service on 127.0.0.1:0. */
export async function startShopApp(service: string, version: string): Promise<ShopApp> {
  const make = HANDLERS[service];
  if (!make) throw new Error(`unknown demo service ${service}`);
  const handler = make(version);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const app: ShopApp = {
    service,
    labels: { version },
    address: '',
    close: async () => undefined,
  };
  const call = (target: string, path: string): Promise<HopResult> => {
    if (!app.httpProxy) return Promise.resolve({ status: 503, body: { error: 'sidecar not ready' } });
    return requestViaProxy(app.httpProxy, agent, target, path).catch((err: Error) => ({ status: 502, body: { error: err.message } }));
  };
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    const reply = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (path === '/healthz') { reply(200, { ok: true }); return; }
    handler(call, path).then((r) => reply(r.status, r.body), (err: Error) => reply(500, { error: err.message }));
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  const addr = server.address() as AddressInfo;
  app.address = `127.0.0.1:${addr.port}`;
  app.close = () => new Promise<void>((resolve) => {
    agent.destroy();
    server.close(() => resolve());
    server.closeAllConnections();
  });
  return app;
}
