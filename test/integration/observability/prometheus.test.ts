/**
 * A real Prometheus (Debian's /usr/bin/prometheus, its own process, temp config and storage, a free
 * loopback port; never the system service) scrapes the proxies with the config `trellis
 * prometheus-config` generates, and PromQL answers the success rate and p99 of a service.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, runCli, startControlPlane, stopAll } from '../../helpers/processes.js';
import { startHttpApp, type TestApp } from '../../helpers/apps.js';
import { LATENCY_BUCKETS_MS } from '../../../src/proxy/metrics.js';
import { client, eventually, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

const PROMETHEUS = '/usr/bin/prometheus';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface PromVector { metric: Record<string, string>; value: [number, string] }

function get(agent: http.Agent, address: string, path: string): Promise<number> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    http.get({ host, port, path, agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); }).on('error', reject);
  });
}

/** Runs `count` requests, `concurrency` at a time. */
/** The slowest request the client saw in the last load(): no proxy-side latency can exceed it. */
let slowestMs = 0;

async function load(agent: http.Agent, address: string, paths: string[], concurrency = 20): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  slowestMs = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < paths.length) {
      const path = paths[next++]!;
      const started = performance.now();
      statuses.push(await get(agent, address, path));
      slowestMs = Math.max(slowestMs, performance.now() - started);
    }
  }));
  return statuses;
}

/** The upper bound of the histogram bucket a latency falls in: histogram_quantile cannot go past it. */
function bucketCeiling(ms: number): number {
  return LATENCY_BUCKETS_MS.find((b) => b >= ms) ?? Infinity;
}

describe('Prometheus scrapes the proxies (trellis prometheus-config)', () => {
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  const apps: TestApp[] = [];
  let backend: MeshProxy;
  let frontend: MeshProxy;
  let prom: ChildProcess | undefined;
  let promLog = '';
  let promUrl = '';
  let dir = '';
  let generated = '';
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

  /** An instant query, evaluated at `at` (Unix seconds) when given, so windowed queries compared with each other see the same samples. */
  async function query(q: string, at?: number): Promise<PromVector[]> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}${at === undefined ? '' : `&time=${at}`}`);
    const body = await res.json() as { status: string; error?: string; data: { resultType: string; result: PromVector[] } };
    if (body.status !== 'success') throw new Error(`PromQL ${q}: ${body.error}`);
    return body.data.result;
  }
  async function scalar(q: string, at?: number): Promise<number | undefined> {
    const r = await query(q, at);
    return r.length === 1 ? Number(r[0]!.value[1]) : undefined;
  }

  before(async () => {
    cp = await startControlPlane();
    const app = await startHttpApp('b1');
    const self = await startHttpApp('fe');
    apps.push(app, self);
    backend = await startMeshProxy(cp, { service: 'backend', app: app.address });
    frontend = await startMeshProxy(cp, { service: 'frontend', app: self.address, outbound: ['backend'] });
    await waitForEndpoints(frontend, 'backend', 1);

    // The admin address each proxy reported in its hello is in proxies().
    const { proxies } = await client(cp).proxies();
    assert.deepEqual(new Set(proxies.map((p) => p.adminAddress)), new Set([backend.admin, frontend.admin]));

    const res = await runCli(['prometheus-config', '--scrape-interval', '1s'], { api: cp.api });
    assert.equal(res.code, 0, res.stderr);
    generated = res.stdout;
    dir = await mkdtemp(join(tmpdir(), 'trellis-prom-'));
    await writeFile(join(dir, 'prometheus.yml'), generated);
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(PROMETHEUS, [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    prom.stdout!.on('data', (c: Buffer) => { promLog += c.toString(); });
    prom.stderr!.on('data', (c: Buffer) => { promLog += c.toString(); });
    await eventually(async () => {
      if (prom!.exitCode !== null) throw new Error(`prometheus exited ${prom!.exitCode}: ${promLog}`);
      return (await fetch(`${promUrl}/-/ready`)).status === 200;
    }, 20_000, 'prometheus to be ready');
  });

  after(async () => {
    agent.destroy();
    if (prom && prom.exitCode === null) {
      const exited = new Promise((r) => prom!.once('exit', r));
      prom.kill('SIGTERM');
      const t = setTimeout(() => prom!.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('generates a config with one target per proxy admin address', () => {
    assert.match(generated, /same host/);
    assert.ok(generated.includes(JSON.stringify(backend.admin)), generated);
    assert.ok(generated.includes(JSON.stringify(frontend.admin)), generated);
  });

  it('scrapes every proxy target successfully', async () => {
    await eventually(async () => {
      const up = await query('up{job="trellis-proxies"}');
      return up.length === 2 && up.every((s) => s.value[1] === '1');
    }, 20_000, `both targets up (prometheus log: ${promLog})`);
    const services = (await query('trellis_config_version')).map((s) => s.metric.service).sort();
    assert.deepEqual(services, ['backend', 'frontend']);
  });

  it('PromQL gives the success rate (0.9) and the p99 latency of a service', async () => {
    const slow = '/slow?ms=210';
    const mix = (ok: number, failed: number) => [...Array<string>(ok).fill(slow), ...Array<string>(failed).fill('/status/500')];
    // Warm-up in the same 9:1 proportion, so both series exist before the measured traffic and
    // rate()'s extrapolation treats them alike.
    await load(agent, frontend.outbound.backend!, mix(9, 1));
    const sel = 'direction="inbound",destination="backend"';
    const out = 'direction="outbound",source="frontend",destination="backend"';
    const scraped = async (n: number) => (await scalar(`sum(trellis_requests_total{${sel}})`)) === n && (await scalar(`sum(trellis_requests_total{${out}})`)) === n;
    await eventually(() => scraped(10), 20_000, 'the warm-up scraped at both proxies');
    const statuses = await load(agent, frontend.outbound.backend!, mix(90, 10));
    // Quantiles are judged against what this run measured, not an assumed speed: no request can be
    // faster than the app's 210ms delay, and none slower than the slowest the client saw.
    const ceiling = bucketCeiling(slowestMs);
    assert.equal(statuses.filter((s) => s === 500).length, 10);
    assert.equal(statuses.filter((s) => s === 200).length, 90);
    await eventually(() => scraped(110), 20_000, 'the traffic scraped at both proxies');
    // One more scrape of every target after the load ended, so both ends of rate()'s window hold final values.
    const loadEnded = Date.now() / 1000;
    await eventually(async () => ((await scalar('min(timestamp(up))')) ?? 0) > loadEnded, 20_000, 'a scrape after the load');
    // Every windowed query below is evaluated at this one instant: a scrape landing between two of
    // them would otherwise shift rate()'s window and its extrapolation, and the p99s would differ.
    const at = Date.now() / 1000;

    // Lifetime success rate (exact) and the dashboard's windowed rate (±0.01).
    const lifetime = await scalar(`sum(trellis_requests_total{${sel},classification="success"}) / sum(trellis_requests_total{${sel}})`);
    assert.equal(lifetime, 99 / 110);
    const rate = await scalar(`sum(rate(trellis_requests_total{${sel},classification="success"}[1m])) / sum(rate(trellis_requests_total{${sel}}[1m]))`, at);
    assert.ok(rate !== undefined && Math.abs(rate - 0.9) <= 0.01, `success rate ${rate}`);
    // The same from the caller's side, by source.
    const outRate = await scalar(`sum(rate(trellis_requests_total{${out},classification="success"}[1m])) / sum(rate(trellis_requests_total{${out}}[1m]))`, at);
    assert.ok(outRate !== undefined && Math.abs(outRate - 0.9) <= 0.01, `outbound success rate ${outRate}`);

    // p99 and p50 fall among the slow requests: above the app's delay, within the bucket of the slowest.
    const p99 = await scalar(`histogram_quantile(0.99, sum by (le) (rate(trellis_request_duration_ms_bucket{${sel}}[1m])))`, at);
    assert.ok(p99 !== undefined && p99 > 210 && p99 <= ceiling, `p99 ${p99} (slowest seen ${slowestMs}ms)`);
    const p50 = await scalar(`histogram_quantile(0.5, sum by (le) (rate(trellis_request_duration_ms_bucket{${sel}}[1m])))`, at);
    assert.ok(p50 !== undefined && p50 > 200 && p50 <= ceiling && p50 <= p99, `p50 ${p50}`);

    // Every query of the shipped Grafana dashboard is valid PromQL on these metrics, and its
    // success-rate and p99 panels give the same answers.
    const dashboard = JSON.parse(await readFile(join(REPO_ROOT, 'docs/grafana/trellis-dashboard.json'), 'utf8')) as {
      panels: Array<{ title: string; targets?: Array<{ expr: string; legendFormat: string }> }>;
    };
    const exprs = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((t) => ({ panel: panel.title, legend: t.legendFormat,
      expr: t.expr.replaceAll('$__rate_interval', '1m').replaceAll('$service', 'backend') })));
    assert.ok(exprs.length >= 20);
    for (const e of exprs) await query(e.expr, at); // throws on a PromQL error
    const byTitle = async (title: string, legend: string) => {
      const e = exprs.find((x) => x.panel === title && x.legend === legend)!;
      return (await query(e.expr, at)).find((r) => r.metric.destination === 'backend');
    };
    const panelRate = Number((await byTitle('Success rate (non-5xx)', '{{destination}}'))!.value[1]);
    assert.ok(Math.abs(panelRate - 0.9) <= 0.01, `dashboard success rate ${panelRate}`);
    const panelP99 = Number((await byTitle('Latency p50 / p95 / p99', 'p99 {{destination}}'))!.value[1]);
    assert.ok(Math.abs(panelP99 - p99) <= 1, `dashboard p99 ${panelP99} vs ${p99}`);
  });
});
