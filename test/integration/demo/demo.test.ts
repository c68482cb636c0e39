/**
 * `trellis demo` end to end: the real control plane and proxies as child processes, the shop
 * registered with the canary route, traffic through the mesh, and a clean stop on SIGINT.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startProcess, stopAll, type StartedProcess } from '../../helpers/processes.js';
import { eventually } from '../../helpers/mesh.js';
import { TrellisClient } from '../../../src/sdk/client.js';

function getViaProxy(proxy: string, url: string): Promise<{ status: number; body: string }> {
  const colon = proxy.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: proxy.slice(0, colon), port: Number(proxy.slice(colon + 1)), path: url,
      headers: { host: new URL(url).host }, agent: false, timeout: 5000,
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

describe('trellis demo', () => {
  let demo: StartedProcess;
  let client: TrellisClient;
  let webProxy: string;

  before(async () => {
    demo = await startProcess(['demo', '--api', '127.0.0.1:0', '--duration', '60s'], { expect: ['api'], timeoutMs: 30_000 });
    await demo.waitForLine((l) => l.includes('"event":"ready"'), 30_000);
    client = new TrellisClient({ baseUrl: `http://${demo.listening.api}` });
    webProxy = demo.listening['http-proxy:web']!;
    assert.ok(webProxy, 'the demo announces web\'s sidecar HTTP proxy');
  });

  after(stopAll);

  it('registers the shop with its instances, the canary route and the policy through the real API', async () => {
    const services = await client.services();
    const byName = new Map(services.map((s) => [s.name, s]));
    for (const name of ['web', 'catalog', 'inventory', 'checkout', 'payments']) {
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
  });

  it('serves the shop through the mesh with the canary split', async () => {
    const versions = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const res = await getViaProxy(webProxy, 'http://web/');
      assert.equal(res.status, 200, res.body);
      const body = JSON.parse(res.body) as { catalogVersion: string; checkout: { payment: { authorized: boolean } } };
      assert.equal(body.checkout.payment.authorized, true);
      versions.set(body.catalogVersion, (versions.get(body.catalogVersion) ?? 0) + 1);
    }
    const v2 = versions.get('v2') ?? 0;
    assert.equal((versions.get('v1') ?? 0) + v2, 200);
    // 10% of 200: 20 expected; [4, 45] is far outside any plausible random deviation.
    assert.ok(v2 >= 4 && v2 <= 45, `catalog v2 answered ${v2} of 200`);
  });

  it('reports steady traffic in its summary lines', async () => {
    const line = await demo.waitForLine((l) => l.startsWith('traffic '), 15_000);
    const m = /last \d+s: (\d+) req, ([\d.]+)% ok/.exec(line);
    assert.ok(m, line);
    assert.ok(Number(m[1]) > 0, line);
    assert.ok(Number(m[2]) >= 90, line);
  });

  it('stops every process on SIGINT and exits 0', async () => {
    const pids = demo.stdoutLines.flatMap((l) => {
      try {
        const ev = JSON.parse(l) as { event?: string; pid?: number };
        return ev.event === 'child' && typeof ev.pid === 'number' ? [ev.pid] : [];
      } catch { return []; }
    });
    assert.equal(pids.length, 7, 'a control plane and six proxies');
    assert.ok(pids.every(alive));
    const code = await demo.stop('SIGINT');
    assert.equal(code, 0, demo.stderr());
    // The demo awaits its children's exits before exiting itself; allow for the kernel reaping them.
    await eventually(() => pids.every((pid) => !alive(pid)), 5000, 'every child process to be gone');
  });
});
