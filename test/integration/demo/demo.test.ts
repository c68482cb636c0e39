/**
 * `trellis demo` end to end: the real control plane and proxies as child processes, the shop
 * registered with the canary route, HTTP traffic and one gRPC hop (checkout → payments) through the
 * mesh, the AuthorizationPolicy refusing the rogue caller at payments' sidecar (denials in the API),
 * the bound API URL printed with --api 127.0.0.1:0, and a clean stop on SIGINT, and on SIGTERM or SIGHUP
 * mid-start-up; a SIGKILLed demo's children are stopped by its reaper.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startProcess, stopAll, type StartedProcess } from '../../helpers/processes.js';
import { eventually } from '../../helpers/mesh.js';
import { TrellisClient } from '../../../src/sdk/client.js';
import type { TapEvent } from '../../../src/api/schema/tap.js';
import { AUTHORIZE_PATH } from '../../../src/demo/payments-grpc.js';

const WAIT_MS = 60_000; // generous: the machine may be shared and loaded
/** The demo's own start-up timeout (its 30 s budget is only reported when exceeded, never failed on). */
const STARTUP_WAIT_MS = 120_000;

function getViaProxy(proxy: string, url: string): Promise<{ status: number; body: string }> {
  const colon = proxy.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: proxy.slice(0, colon), port: Number(proxy.slice(colon + 1)), path: url,
      headers: { host: new URL(url).host }, agent: false, timeout: 10_000,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** The pids of the demo's children, from its {"event":"child"} lines. */
function childPids(demo: StartedProcess): number[] {
  return demo.stdoutLines.flatMap((l) => {
    try {
      const ev = JSON.parse(l) as { event?: string; pid?: number };
      return ev.event === 'child' && typeof ev.pid === 'number' ? [ev.pid] : [];
    } catch { return []; }
  });
}

/** Sum of a Prometheus counter's samples whose labels include every one of `labels`. */
function counter(metrics: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('trellis demo', () => {
  let demo: StartedProcess;
  let client: TrellisClient;
  let httpProxy: string;
  let ready: { api: string; dashboard: string; httpProxy: string; web: string; startupMs: number };

  before(async () => {
    demo = await startProcess(['demo', '--api', '127.0.0.1:0', '--duration', '300s'], { expect: ['api'], timeoutMs: WAIT_MS });
    ready = JSON.parse(await demo.waitForLine((l) => l.includes('"event":"ready"'), STARTUP_WAIT_MS)) as typeof ready;
    client = new TrellisClient({ baseUrl: `http://${demo.listening.api}` });
    httpProxy = demo.listening['http-proxy:loadgen']!;
    assert.ok(httpProxy, 'the demo announces loadgen\'s sidecar HTTP proxy');
  });

  after(stopAll);

  it('prints the bound dashboard URL (with --api 127.0.0.1:0) and what to try next', async (t) => {
    const api = demo.listening.api!;
    assert.match(api, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(api, '127.0.0.1:0');
    assert.equal(ready.dashboard, `http://${api}/`, 'the ready event carries the bound URL');
    assert.equal(ready.api, `http://${api}/`);
    assert.equal(ready.httpProxy, httpProxy);
    assert.equal(ready.web, demo.listening['http-proxy:web']);
    const text = demo.stdoutLines.join('\n');
    assert.ok(text.includes(`Dashboard:  http://${api}/`), text);
    assert.ok(text.includes(`export TRELLIS_API=http://${api}`), 'a non-default API address is exported for the CLI commands');
    for (const cmd of ['npx trellis stat', 'npx trellis top', 'npx trellis tap catalog', 'npx trellis can-i --from rogue --to payments',
      'npx trellis get httproute catalog-canary -o yaml', 'npx trellis apply -f canary.yaml']) {
      assert.ok(text.includes(cmd), `suggests ${cmd}`);
    }
    const page = await fetch(ready.dashboard, { signal: AbortSignal.timeout(10_000) });
    assert.equal(page.status, 200, 'the printed URL answers');
    t.diagnostic(`traffic flowing ${ready.startupMs} ms after launch`);
  });

  it('registers the shop with its instances, the canary route and the policies through the real API', async () => {
    const services = await client.services();
    const byName = new Map(services.map((s) => [s.name, s]));
    for (const name of ['web', 'catalog', 'inventory', 'checkout', 'payments', 'rogue', 'loadgen']) {
      assert.ok(byName.get(name), `service ${name} is registered`);
      assert.equal(byName.get(name)!.instances, name === 'catalog' ? 2 : 1, `${name} instances`);
    }
    const catalog = await client.describeService('catalog');
    assert.deepEqual(catalog.instances.map((i) => i.labels.version).sort(), ['v1', 'v2']);
    assert.ok(catalog.instances.every((i) => i.connected));
    const route = await client.get('HTTPRoute', 'catalog-canary') as unknown as {
      spec: { rules: Array<{ backendRefs: Array<{ subset: { version: string }; weight: number }> }> };
    };
    assert.deepEqual(route.spec.rules[0]!.backendRefs.map((b) => [b.subset.version, b.weight]), [['v1', 90], ['v2', 10]]);
    const policy = await client.get('TrafficPolicy', 'catalog-lb') as unknown as { spec: { loadBalancer: { type: string } } };
    assert.equal(policy.spec.loadBalancer.type, 'EWMA');
    const payments = await client.get('Service', 'payments') as unknown as { spec: { protocol: string } };
    assert.equal(payments.spec.protocol, 'grpc');
    const authz = await client.get('AuthorizationPolicy', 'payments-allow-checkout') as unknown as {
      spec: { targetRef: { name: string }; action: string; rules: Array<{ from: Array<{ services: string[] }>; to: Array<{ paths: string[] }> }> };
    };
    assert.equal(authz.spec.targetRef.name, 'payments');
    assert.equal(authz.spec.action, 'ALLOW');
    assert.deepEqual(authz.spec.rules[0]!.from[0]!.services, ['checkout']);
    assert.deepEqual(authz.spec.rules[0]!.to[0]!.paths, [AUTHORIZE_PATH]);
    const { proxies } = await client.proxies();
    assert.equal(proxies.find((p) => p.service === 'payments')?.protocol, 'grpc', 'payments\' sidecar runs --protocol grpc');
  });

  it('serves the shop through the mesh: the canary split, and the payment authorized over gRPC by the verified checkout', async () => {
    const versions = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const res = await getViaProxy(httpProxy, 'http://web/');
      assert.equal(res.status, 200, res.body);
      const body = JSON.parse(res.body) as {
        catalogVersion: string;
        checkout: { payment: { transport: string; authorized: boolean; caller: string; amountCents: number } };
      };
      const payment = body.checkout.payment;
      assert.equal(payment.transport, 'grpc');
      assert.equal(payment.authorized, true);
      assert.ok(payment.amountCents > 0);
      // Only payments' sidecar sets x-trellis-peer (from checkout's mTLS certificate): the call crossed the mesh.
      assert.equal(payment.caller, 'spiffe://trellis.local/service/checkout');
      versions.set(body.catalogVersion, (versions.get(body.catalogVersion) ?? 0) + 1);
    }
    const v2 = versions.get('v2') ?? 0;
    assert.equal((versions.get('v1') ?? 0) + v2, 200);
    // 10% of 200: 20 expected; [4, 45] is far outside any plausible random deviation.
    assert.ok(v2 >= 4 && v2 <= 45, `catalog v2 answered ${v2} of 200`);
  });

  it('carries checkout → payments as gRPC through payments\' sidecar (tap, metrics, stats)', async () => {
    // Live tap of payments: a gRPC call from checkout allowed, one from rogue refused.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), WAIT_MS);
    let allowed: TapEvent | undefined;
    let refused: TapEvent | undefined;
    try {
      for await (const msg of client.tap({ service: 'payments' }, { signal: abort.signal })) {
        if (msg.type !== 'tap' || msg.event.direction !== 'inbound' || msg.event.path !== AUTHORIZE_PATH) continue;
        if (msg.event.source === 'checkout' && !msg.event.error) allowed ??= msg.event;
        if (msg.event.source === 'rogue') refused ??= msg.event;
        if (allowed && refused) break;
      }
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
    assert.ok(allowed, 'a checkout → payments call was tapped');
    assert.equal(allowed.method, 'POST');
    assert.match(allowed.requestHeaders['content-type'] ?? '', /^application\/grpc/);
    assert.ok(refused, 'a rogue → payments call was tapped');
    assert.equal(refused.error, 'FORBIDDEN');

    // payments' proxy metrics: inbound requests from checkout, and the policy's decisions both ways.
    const { proxies } = await client.proxies();
    const admin = proxies.find((p) => p.service === 'payments')?.adminAddress;
    assert.ok(admin, 'payments\' proxy reports its admin address');
    const metrics = await (await fetch(`http://${admin}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    assert.ok(counter(metrics, 'trellis_requests_total', { direction: 'inbound', source: 'checkout', destination: 'payments' }) > 0, 'checkout → payments requests counted');
    assert.ok(counter(metrics, 'trellis_authz_decisions_total', { policy: 'payments-allow-checkout', action: 'ALLOW', decision: 'allow' }) > 0);
    assert.ok(counter(metrics, 'trellis_authz_decisions_total', { action: 'NO_ALLOW_MATCH', decision: 'deny' }) > 0);

    // The control plane's golden metrics: the checkout → payments edge succeeds, rogue → payments never does.
    await eventually(async () => {
      const { rows } = await client.stats({ by: 'edge', window: '5m' });
      const edge = (source: string) => rows.find((r) => r.source === source && r.service === 'payments');
      const ok = edge('checkout');
      const bad = edge('rogue');
      return ok !== undefined && ok.successes > 0 && bad !== undefined && bad.requests > 0 && bad.successes === 0;
    }, WAIT_MS, 'the checkout → payments and rogue → payments edges in the stats');
  });

  it('refuses the rogue caller with PERMISSION_DENIED and lists the denials in GET /api/v1/denials', async () => {
    const denials = await eventually(async () => {
      const list = await client.denials({ service: 'payments' });
      return list.some((d) => d.source === 'rogue') ? list : false;
    }, WAIT_MS, 'a rogue → payments denial');
    assert.ok(denials);
    const d = denials.find((x) => x.source === 'rogue')!;
    assert.equal(d.destination, 'payments');
    assert.equal(d.method, 'POST');
    assert.equal(d.path, AUTHORIZE_PATH);
    assert.match(d.reason, /payments-allow-checkout/);
    assert.ok(!denials.some((x) => x.source === 'checkout'), 'checkout is never denied');
    // What the rogue's gRPC client got back, from the demo's summary lines.
    const line = await demo.waitForLine((l) => l.startsWith('traffic ') && l.includes('rogue -> payments'), WAIT_MS);
    assert.match(line, /rogue -> payments: PERMISSION_DENIED×\d+$/);
  });

  it('reports steady traffic in its summary lines', async () => {
    const line = await demo.waitForLine((l) => l.startsWith('traffic '), WAIT_MS);
    const m = /last \d+s: (\d+) req, ([\d.]+)% ok/.exec(line);
    assert.ok(m, line);
    assert.ok(Number(m[1]) > 0, line);
    assert.ok(Number(m[2]) >= 90, line);
  });

  it('stops every process on SIGINT and exits 0', async () => {
    const pids = childPids(demo);
    assert.equal(pids.length, 10, 'a control plane, eight proxies and the reaper');
    assert.ok(pids.every(alive));
    const code = await demo.stop('SIGINT');
    assert.equal(code, 0, demo.stderr());
    assert.ok(demo.stdoutLines.includes('demo stopped: every process exited'));
    // The demo awaits its children's exits before exiting itself; allow for the kernel reaping them.
    await eventually(() => pids.every((pid) => !alive(pid)), 10_000, 'every child process to be gone');
  });
});

describe('trellis demo stopped during start-up', () => {
  after(stopAll);

  // SIGTERM as a service manager sends it; SIGHUP as closing the terminal does (the children have their own process groups).
  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    it(`stops the processes it already started on ${signal} and exits 0`, async () => {
      const demo = await startProcess(['demo', '--api', '127.0.0.1:0', '--quiet'], { expect: ['api'], timeoutMs: WAIT_MS });
      // The control plane is up and at least one sidecar was spawned: stop in the middle of start-up.
      await demo.waitForLine((l) => l.includes('"event":"child"') && l.includes('"name":"proxy '), WAIT_MS);
      const pids = childPids(demo);
      assert.ok(pids.length >= 2, `children so far: ${pids.length}`);
      const code = await demo.stop(signal);
      assert.equal(code, 0, demo.stderr());
      const all = childPids(demo);
      await eventually(() => all.every((pid) => !alive(pid)), 10_000, 'every child process to be gone');
    });
  }

  it('leaves no process behind even when the demo itself is killed with SIGKILL (the reaper stops them)', async () => {
    const demo = await startProcess(['demo', '--api', '127.0.0.1:0', '--quiet'], { expect: ['api'], timeoutMs: WAIT_MS });
    await demo.waitForLine((l) => l.includes('"event":"child"') && l.includes('"name":"proxy '), WAIT_MS);
    const pids = childPids(demo);
    assert.ok(pids.length >= 3, `the reaper, the control plane and a proxy at least: ${pids.length}`);
    assert.equal(await demo.stop('SIGKILL'), null);
    // The reaper gives children 10 s after SIGTERM before SIGKILL; they normally go within a second or two.
    await eventually(() => pids.every((pid) => !alive(pid)), 30_000, 'every child process, the reaper included, to be gone');
  });
});
