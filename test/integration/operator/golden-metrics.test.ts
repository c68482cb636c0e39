/**
 * Golden metrics without Prometheus, end to end with real processes: proxies send per-interval
 * aggregates on their config stream (TRELLIS_STATS_INTERVAL_MS=500 here), the control plane answers
 * GET /api/v1/stats, and the CLI prints them (`trellis stat`, `trellis top --once`). Also
 * `trellis proxy-config` and `trellis check` (healthy → exit 0; a proxy SIGKILLed → exit 1 with a hint).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startControlPlane, stopAll, type CliResult } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, waitForConfig, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';
import { TrellisApiError, type StatsResponse } from '../../../src/sdk/client.js';

// Inherited by every process this suite starts (startProcess copies process.env).
process.env.TRELLIS_STATS_INTERVAL_MS = '500';

const API = 'trellis.dev/v1alpha1';

interface ProxyConfigJson {
  currentVersion: string;
  instances: Array<{ instanceId: string; address: string; connected: boolean; ackedVersion: string; currentVersion: string; upToDate: boolean; lastNack: unknown; certNotAfter: string }>;
}

describe('golden metrics, stat, top, proxy-config and check', () => {
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  const apps: TestApp[] = [];
  let backend: MeshProxy;
  let frontend: MeshProxy;
  const cli = async (args: string[]) => runCli(args, { api: cp.api });
  const statJson = async (args: string[]): Promise<StatsResponse> => {
    const res = await cli(['stat', ...args, '-o', 'json']);
    assert.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout) as StatsResponse;
  };

  before(async () => {
    cp = await startControlPlane();
    const b = await startHttpApp('b1');
    const f = await startHttpApp('fe');
    apps.push(b, f);
    backend = await startMeshProxy(cp, { service: 'backend', app: b.address });
    frontend = await startMeshProxy(cp, { service: 'frontend', app: f.address, outbound: ['backend'] });
    await waitForEndpoints(frontend, 'backend', 1);
    await client(cp).apply([{ apiVersion: API, kind: 'HTTPRoute', metadata: { name: 'backend-route' }, spec: {
      parentRefs: [{ name: 'backend' }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }],
    } }] as never);
    await waitForConfig(frontend, (s) => s.httpRoutes.some((r: { metadata: { name: string } }) => r.metadata.name === 'backend-route'), 'backend-route');
    // The known mix: 90 answered 200, 10 answered 500.
    for (let i = 0; i < 100; i++) {
      const res = await httpGet(frontend.outbound.backend!, i % 10 === 9 ? '/status/500' : `/items/${i}`);
      assert.equal(res.status, i % 10 === 9 ? 500 : 200);
    }
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('trellis stat SERVICE: success rate, rate and latency from the destination\'s proxies', async () => {
    const res = await eventually(async () => {
      const s = await statJson(['backend']);
      return s.rows[0]?.requests === 100 ? s : undefined;
    }, 15_000, 'the 100 requests in the backend stats') as StatsResponse;
    assert.equal(res.by, 'service');
    assert.equal(res.window, '1m');
    assert.equal(res.rows.length, 1);
    const row = res.rows[0]!;
    assert.equal(row.service, 'backend');
    assert.equal(row.direction, 'inbound');
    assert.ok(Math.abs(row.successRate - 0.9) <= 0.01, `success rate ${row.successRate}`);
    assert.equal(row.successes, 90);
    // The rate is over the window, or over the time stats have been arriving when shorter (here: since the traffic began).
    const expected = 100 / (res.coveredMs / 1000);
    assert.ok(row.rps > 0 && Math.abs(row.rps - expected) <= expected * 0.01 && res.coveredMs <= 60_000, `rps ${row.rps} over ${res.coveredMs}ms`);
    assert.ok(row.latencyMs.p99 > 0 && row.latencyMs.p99 < 1000, `p99 ${row.latencyMs.p99}`);
    assert.ok(row.latencyMs.p50 <= row.latencyMs.p95 && row.latencyMs.p95 <= row.latencyMs.p99);

    const table = await cli(['stat', 'backend']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /SERVICE\s+REQUESTS\s+RPS\s+SUCCESS\s+P50\s+P95\s+P99/);
    assert.match(table.stdout, /backend\s+100\s+\S+\s+90\.00%/);
  });

  it('trellis stat --edges shows frontend → backend; --routes shows the route', async () => {
    const edges = await statJson(['--edges']);
    const edge = edges.rows.find((r) => r.source === 'frontend' && r.service === 'backend');
    assert.ok(edge, JSON.stringify(edges.rows));
    assert.equal(edge.requests, 100);
    assert.ok(Math.abs(edge.successRate - 0.9) <= 0.01);
    const table = await cli(['stat', '--edges']);
    assert.match(table.stdout, /SOURCE\s+DESTINATION/);
    assert.match(table.stdout, /frontend\s+backend\s+100/);

    const routes = await statJson(['backend', '--routes', '--window', '5m']);
    assert.deepEqual(routes.rows.map((r) => [r.service, r.route, r.requests, r.direction]), [['backend', 'backend-route/0', 100, 'outbound']]);
  });

  it('trellis top --once lists the busiest routes', async () => {
    const res = await cli(['top', '--once', '--window', '1m']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /SERVICE\s+ROUTE\s+RPS/);
    assert.match(res.stdout, /backend\s+backend-route\/0\s+\S+\s+100\s+90\.00%/);
  });

  it('the API validates the window and by, and the OpenAPI document describes /api/v1/stats', async () => {
    await assert.rejects(client(cp).stats({ window: '1h' }), (err: unknown) => err instanceof TrellisApiError && err.status === 400 && err.errors.some((e) => e.path === 'window'));
    await assert.rejects(client(cp).stats({ by: 'pod' as never }), (err: unknown) => err instanceof TrellisApiError && err.status === 400);
    const doc = await client(cp).openApi() as { paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } };
    assert.ok(doc.paths['/api/v1/stats']);
    assert.ok(doc.components.schemas.StatsResponse);
    const bad = await cli(['stat', '--window', '1h']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /window/);
  });

  it('trellis proxy-config SERVICE: ACKed version equals the current one', async () => {
    const view = await eventually(async () => {
      const res = await cli(['proxy-config', 'backend', '-o', 'json']);
      assert.equal(res.code, 0, res.stderr);
      const v = JSON.parse(res.stdout) as ProxyConfigJson;
      return v.instances[0]?.ackedVersion === v.currentVersion ? v : undefined;
    }, 10_000, 'backend to ACK the current version') as ProxyConfigJson;
    assert.equal(view.instances.length, 1);
    const inst = view.instances[0]!;
    assert.equal(inst.address, backend.inbound);
    assert.equal(inst.connected, true);
    assert.equal(inst.upToDate, true);
    assert.equal(inst.lastNack, null);
    assert.ok(Date.parse(inst.certNotAfter) > Date.now());
    const table = await cli(['proxy-config', 'backend']);
    assert.match(table.stdout, /INSTANCE\s+ADDRESS\s+CONNECTED\s+ACKED\s+CURRENT\s+STATE/);
    assert.match(table.stdout, /up to date/);
    const none = await cli(['proxy-config', 'nosuch']);
    assert.equal(none.code, 1);
  });

  it('trellis check: exit 0 on a healthy mesh, exit 1 with a hint after a proxy is SIGKILLed', async () => {
    const healthy = await cli(['check']);
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
    for (const name of ['control plane /healthz', 'control plane /readyz', 'CA certificate', 'proxies connected', 'config in sync', 'proxy certificates', 'clock skew']) {
      assert.match(healthy.stdout, new RegExp(`${name}\\s+ok`), name);
    }
    assert.match(healthy.stdout, /All checks passed/);
    const json = await cli(['check', '-o', 'json']);
    assert.equal(json.code, 0);
    assert.equal((JSON.parse(json.stdout) as { ok: boolean }).ok, true);

    await backend.stop('SIGKILL');
    const failed = await eventually(async () => {
      const res = await cli(['check']);
      return res.code === 1 ? res : undefined;
    }, 10_000, 'check to fail once backend is gone') as CliResult;
    assert.match(failed.stdout, /proxies connected\s+FAIL\s+1\/2 disconnected: backend-/);
    assert.match(failed.stdout, /hint \(proxies connected\): .+/);
    assert.match(failed.stdout, /1 check\(s\) failed/);
  });
});
