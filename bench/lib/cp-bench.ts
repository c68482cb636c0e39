/**
 * The control-plane benchmark (issue #7 item 2): a real `trellis control-plane` process serving a mesh of
 * 1,000 services and 10,000 endpoints to 100 connected proxies (2 real `trellis proxy` processes + 98
 * simulated ones running the proxy's own join, config-stream and apply code), measuring
 *   - the initial push: 98 proxies joining at once, join → first config applied, per proxy and for all;
 *   - convergence: a change applied through the REST API (HTTPRoute weight, TrafficPolicy) or an
 *     instance joining/leaving → the time until every one of the 100 proxies has applied and ACKed it;
 *   - control-plane CPU and RSS, real proxy RSS with that config (idle, while configs change, under load);
 *   - certificate signings per second (real join tokens, real CSRs, a TLS connection per request).
 * See docs/performance.md "Control plane" for what is real and what is simulated.
 */
import http from 'node:http';
import { rmSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TrellisClient } from '../../src/sdk/client.js';
import { ControlPlaneClient } from '../../src/proxy/bootstrap/control-plane-client.js';
import { readJoinToken } from '../../src/proxy/bootstrap/join-token.js';
import { generateWorkloadKey } from '../../src/pki/workload-key.js';
import type { Resource } from '../../src/api/schema/resources.js';
import type { Snapshot } from '../../src/api/schema/snapshot.js';
import { openLoop, type LatencyResult } from './load.js';
import { canaryRoute, meshResources, ROUTE_BASE, seedDataDir, startControlPlaneProc, svcName, trafficPolicy, type MeshShape } from './cp-fixture.js';
import { startRealProxy, type RealProxy } from './real-proxy.js';
import { startSimProxy, type SimProxy } from './sim-proxy.js';
import { summariseCpuProfile, type CpuProfileSummary } from './cpu-profile.js';
import { cpuMicros, percentile, round, rssMiB, sleep } from './util.js';

export interface CpBenchOptions {
  quick: boolean;
  /** Record a V8 CPU profile of the control plane (written under outDir). */
  profile: boolean;
  outDir: string;
  log: (s: string) => void;
  shape?: Partial<MeshShape>;
  /** Extra node arguments for the two real proxies (e.g. ['--max-semi-space-size=1']): an experiment knob. */
  proxyNodeArgs?: string[];
}

export interface Dist { n: number; p50: number; p90: number; p99: number; max: number; mean: number }

export interface CpBenchResult {
  shape: MeshShape;
  proxies: { real: number; simulated: number; realNodeArgs: string[] };
  controlPlaneStartupMs: number;
  seedMs: number;
  applyResourcesMs: number;
  initialPush: { allMs: number; perProxyMs: Dist; snapshotBytes: number; applyMs: Dist };
  convergence: Record<string, Dist> & { all: Dist };
  /** The API call alone (validation + store write), part of every change round's time. */
  apiApplyMs: Dist;
  /** Change → the first proxy applied it: the control plane's part (then the proxies' own work spreads the rest). */
  firstProxyMs: Dist;
  /** Sim proxies' validate + compile time per snapshot during the rounds. */
  proxyApplyMs: Dist;
  nacks: number;
  controlPlane: { cpuSecondsPerRound: number; cpuPct: number; rssIdleMiB: number; rssMaxMiB: number };
  realProxyRssMiB: Record<string, { afterConfig: number; duringChanges: number; underLoad: number }>;
  load?: LatencyResult;
  signing: { requests: number; concurrency: number; perSecond: number; latencyMs: Dist; errors: number };
  profile?: CpuProfileSummary & { file: string };
}

export function dist(xs: number[]): Dist {
  const s = [...xs].sort((a, b) => a - b);
  return {
    n: s.length, p50: round(percentile(s, 50), 1), p90: round(percentile(s, 90), 1), p99: round(percentile(s, 99), 1),
    max: round(s[s.length - 1] ?? NaN, 1), mean: round(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length), 1),
  };
}

type Change = { kind: 'route-weight' | 'traffic-policy' | 'instance-join' | 'instance-leave'; seen: (s: Snapshot) => boolean };

export async function runControlPlaneBench(o: CpBenchOptions): Promise<CpBenchResult> {
  const services = o.shape?.services ?? 1000;
  const shape: MeshShape = { services, endpoints: 10_000, connections: 100, routes: Math.floor(services / 10), policies: Math.floor(services / 5), ...o.shape };
  const rounds = o.quick ? 12 : 40;
  const REAL = 2;
  const SIMS = shape.connections - REAL;
  const log = o.log;
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    // ---- the control plane, with E − connections instances restored from its store
    let t = performance.now();
    const dataDir = await seedDataDir(shape);
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const seedMs = performance.now() - t;
    let profDir: string | undefined;
    if (o.profile) { profDir = join(o.outDir, `cpuprofile-control-plane-${new Date().toISOString().replace(/[:.]/g, '-')}`); mkdirSync(profDir, { recursive: true }); }
    const cp = await startControlPlaneProc(dataDir, profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []);
    cleanups.push(() => cp.m.stop());
    log(`control plane ${cp.api} / ${cp.xds}: started in ${round(cp.startupMs, 0)} ms with ${shape.endpoints - shape.connections} restored instances`);
    const api = new TrellisClient({ baseUrl: `http://${cp.api}` });

    t = performance.now();
    const resources = meshResources(shape);
    for (let i = 0; i < resources.length; i += 250) await api.apply(resources.slice(i, i + 250));
    const applyResourcesMs = performance.now() - t;
    log(`applied ${resources.length} resources in ${round(applyResourcesMs, 0)} ms`);

    const tokens = new Map<string, string>();
    const tokenFor = async (svc: string) => {
      let tok = tokens.get(svc);
      if (!tok) { tok = (await api.createToken(svc)).token; tokens.set(svc, tok); }
      return tok;
    };

    // ---- two real proxies: svc-0000 (inbound in front of a local app) and svc-0001 (a client of svc-0000)
    const app = http.createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('x'.repeat(1024)); });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => app.close(() => r())));
    app.keepAliveTimeout = 60_000;
    const appPort = (app.address() as { port: number }).port;
    const { writeFile, mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const tokDir = await mkdtemp(join(tmpdir(), 'trellis-cpbench-tok-'));
    cleanups.push(() => rmSync(tokDir, { recursive: true, force: true }));
    const tokenFile = async (svc: string) => { const f = join(tokDir, `${svc}.token`); await writeFile(f, await tokenFor(svc), { mode: 0o600 }); return f; };
    const server = await startRealProxy('real-proxy-svc-0000', ['--service', svcName(0), '--app', `127.0.0.1:${appPort}`, '--inbound', '127.0.0.1:0',
      '--token-file', await tokenFile(svcName(0)), '--protocol', 'http', '--labels', 'version=v1', '--drain-timeout', '1s'], ['admin', 'inbound'], o.proxyNodeArgs);
    cleanups.push(() => server.m.stop());
    const client = await startRealProxy('real-proxy-svc-0001', ['--service', svcName(1), '--app', '127.0.0.1:9', '--inbound', '127.0.0.1:0',
      '--token-file', await tokenFile(svcName(1)), '--protocol', 'http', '--outbound', `${svcName(0)}=127.0.0.1:0`, '--drain-timeout', '1s'],
    ['admin', 'inbound', `outbound:${svcName(0)}`], o.proxyNodeArgs);
    cleanups.push(() => client.m.stop());
    const reals: RealProxy[] = [server, client];
    log(`real proxies ready (pids ${server.m.pid}, ${client.m.pid})`);

    // ---- 98 simulated proxies join at once (concurrency-bounded): the initial push
    for (let i = 0; i < SIMS; i++) await tokenFor(svcName(2 + i));
    const sims: SimProxy[] = [];
    const firstMs: number[] = [];
    const firstApply: number[] = [];
    const firstSeen = new Set<SimProxy>();
    let snapshotBytes = 0;
    const tJoin = performance.now();
    let next = 0;
    let joined = 0;
    const JOIN_CONCURRENCY = 8;
    await Promise.all(Array.from({ length: JOIN_CONCURRENCY }, async () => {
      while (next < SIMS) {
        const i = next++;
        const svc = svcName(2 + i);
        const t0 = performance.now();
        const sim = await startSimProxy(tokens.get(svc)!, svc, `127.0.0.2:${20000 + i}`, { version: i % 5 === 0 ? 'v2' : 'v1' });
        sim.onApplied = (ev) => {
          if (firstMs.length < SIMS && !firstSeen.has(sim)) {
            firstSeen.add(sim); firstMs.push(ev.at - t0); firstApply.push(ev.applyMs);
            if (!snapshotBytes) snapshotBytes = Buffer.byteLength(JSON.stringify(ev.snapshot));
          }
        };
        sims.push(sim);
        cleanups.push(() => sim.stop());
        await sim.waitVersion(1, 120_000);
        if (++joined % 10 === 0) log(`  ${joined} joined and configured (${round(performance.now() - tJoin, 0)} ms)`);
      }
    }));
    const initialAllMs = performance.now() - tJoin;
    log(`initial push: ${SIMS} simulated proxies joined and applied their first config in ${round(initialAllMs, 0)} ms; snapshot ${round(snapshotBytes / 1024, 0)} KiB`);

    await sleep(1000);
    const rssAfterConfig = Object.fromEntries(reals.map((r, i) => [i === 0 ? 'svc-0000 (inbound)' : 'svc-0001 (client)', round(rssMiB(r.m.pid), 1)]));
    const cpRssIdle = round(rssMiB(cp.m.pid), 1);

    // ---- convergence rounds
    const allProxies = () => [...sims.map((s) => ({ name: s.id, version: () => s.version, wait: (v: number, ms: number) => s.waitVersion(v, ms) })),
      ...reals.map((r, i) => ({ name: `real-${i}`, version: () => r.version, wait: (v: number, ms: number) => r.waitVersion(v, ms) }))];
    const proxyApply: number[] = [];
    let changeVersion = 0;
    let firstAt = 0;
    let currentChange: Change | undefined;
    for (const s of sims) {
      const prev = s.onApplied;
      s.onApplied = (ev) => {
        prev?.(ev);
        proxyApply.push(ev.applyMs);
        if (currentChange && !changeVersion && currentChange.seen(ev.snapshot)) { changeVersion = Number(ev.version); firstAt = ev.at; }
      };
    }
    const byKind: Record<string, number[]> = {};
    const apiMs: number[] = [];
    const all: number[] = [];
    const firstProxy: number[] = [];
    let rssMax: Record<string, number> = {};
    let cpRssMax = cpRssIdle;
    const sampler = setInterval(() => {
      reals.forEach((r, i) => { const k = `real-${i}`; try { rssMax[k] = Math.max(rssMax[k] ?? 0, rssMiB(r.m.pid)); } catch { /* gone */ } });
      try { cpRssMax = Math.max(cpRssMax, rssMiB(cp.m.pid)); } catch { /* gone */ }
    }, 100);
    cleanups.push(() => clearInterval(sampler));
    const cpCpu0 = cpuMicros(cp.m.pid);
    const tRounds = performance.now();
    let joiner: SimProxy | undefined;
    const joinerSvc = svcName(Math.min(500, shape.services - 1));
    for (let r = 0; r < rounds; r++) {
      const kinds = ['route-weight', 'traffic-policy', 'instance-join', 'instance-leave'] as const;
      const kind = kinds[r % 4]!;
      changeVersion = 0;
      const marker = 1000 + r;
      const routeSvc = svcName(ROUTE_BASE + (r % Math.max(1, shape.routes)));
      const policySvc = svcName(r % Math.max(1, shape.policies));
      let joinerId = joiner?.id;
      currentChange = {
        kind,
        seen: kind === 'route-weight'
          ? (s) => s.httpRoutes.some((h) => h.metadata.name === `${routeSvc}-canary` && h.spec.rules[1]?.backendRefs?.[0]?.weight === marker)
          : kind === 'traffic-policy'
            ? (s) => s.clusters[policySvc]?.trafficPolicy?.timeouts?.request === `${10_000 + marker}ms`
            : kind === 'instance-join'
              ? (s) => joinerId !== undefined && (s.clusters[joinerSvc]?.endpoints.some((e) => e.id === joinerId) ?? false)
              : (s) => joinerId !== undefined && !(s.clusters[joinerSvc]?.endpoints.some((e) => e.id === joinerId) ?? false),
      };
      let t0 = performance.now();
      if (kind === 'route-weight' || kind === 'traffic-policy') {
        const res: Resource = kind === 'route-weight' ? canaryRoute(routeSvc, marker) : trafficPolicy(policySvc, marker);
        await api.apply([res]);
        apiMs.push(performance.now() - t0);
      } else if (kind === 'instance-join') {
        // A new instance registers: the clock starts when its config stream opens (it sends hello then).
        let helloAt = 0;
        joiner = await startSimProxy(await tokenFor(joinerSvc), joinerSvc, `127.0.0.3:${30000 + r}`, { version: 'v1' }, () => { helloAt ||= performance.now(); });
        joinerId = joiner.id;
        while (!helloAt) await sleep(1);
        t0 = helloAt;
      } else {
        // The instance leaves with goodbye: deregistered at once.
        const j = joiner!;
        joiner = undefined;
        void j.goodbye().then(() => j.stop());
      }
      const deadline = performance.now() + 60_000;
      while (!changeVersion) {
        if (performance.now() > deadline) throw new Error(`round ${r} (${kind}): no proxy saw the change within 60s`);
        await sleep(2);
      }
      const v = changeVersion;
      await Promise.all(allProxies().map((p) => p.wait(v, 60_000)));
      const ms = performance.now() - t0;
      (byKind[kind] ??= []).push(ms);
      all.push(ms);
      firstProxy.push(firstAt - t0);
      log(`round ${r + 1}/${rounds} ${kind}: version ${v} on all ${sims.length + reals.length} proxies in ${round(ms, 1)} ms (first after ${round(firstAt - t0, 1)} ms)`);
      await sleep(o.quick ? 200 : 300);
    }
    const roundsWall = (performance.now() - tRounds) / 1000;
    const cpCpuSec = (cpuMicros(cp.m.pid) - cpCpu0) / 1e6;
    const duringChanges = { ...rssMax };

    // ---- real proxies under load with that config (client → mTLS → server → app)
    rssMax = {};
    const url = `http://${client.listening[`outbound:${svcName(0)}`]}/`;
    const load = await openLoop({ url, rate: o.quick ? 150 : 250, seconds: o.quick ? 6 : 15, warmupSeconds: 1 });
    log(`load through the real proxies: ${load.achievedRate}/s p50 ${load.p50} p99 ${load.p99} ms, errors ${load.errors}`);
    clearInterval(sampler);
    const realRss: CpBenchResult['realProxyRssMiB'] = {};
    reals.forEach((_r, i) => {
      const name = i === 0 ? 'svc-0000 (inbound)' : 'svc-0001 (client)';
      realRss[name] = { afterConfig: rssAfterConfig[name]!, duringChanges: round(duringChanges[`real-${i}`] ?? NaN, 1), underLoad: round(rssMax[`real-${i}`] ?? NaN, 1) };
    });

    // ---- certificate signings per second
    const signing = await signingBench(cp.xds, await tokenFor(svcName(999)), o.quick ? 300 : 1000, 16, log);

    const nacks = sims.reduce((a, s) => a + s.nacks, 0) + reals.reduce((a, r) => a + r.nacks, 0);
    const result: CpBenchResult = {
      shape, proxies: { real: REAL, simulated: SIMS, realNodeArgs: o.proxyNodeArgs ?? [] },
      controlPlaneStartupMs: round(cp.startupMs, 0), seedMs: round(seedMs, 0), applyResourcesMs: round(applyResourcesMs, 0),
      initialPush: { allMs: round(initialAllMs, 0), perProxyMs: dist(firstMs), snapshotBytes, applyMs: dist(firstApply) },
      convergence: { all: dist(all), ...Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, dist(v)])) },
      apiApplyMs: dist(apiMs),
      firstProxyMs: dist(firstProxy),
      proxyApplyMs: dist(proxyApply),
      nacks,
      controlPlane: { cpuSecondsPerRound: round(cpCpuSec / rounds, 3), cpuPct: round((100 * cpCpuSec) / roundsWall, 1), rssIdleMiB: cpRssIdle, rssMaxMiB: round(cpRssMax, 1) },
      realProxyRssMiB: realRss,
      load,
      signing,
    };
    if (profDir) {
      await cp.m.stop();
      await sleep(300);
      const f = readdirSync(profDir).find((x) => x.endsWith('.cpuprofile'));
      if (f) result.profile = { file: join(profDir, f), ...summariseCpuProfile(JSON.parse(readFileSync(join(profDir, f), 'utf8'))) };
    }
    return result;
  } finally {
    for (const c of cleanups.reverse()) { try { await c(); } catch { /* best effort */ } }
  }
}

/** CSRs signed per second: real join token, a fresh key + CSR per request, one TLS connection per request (as a joining proxy). */
async function signingBench(xds: string, token: string, n: number, concurrency: number, log: (s: string) => void): Promise<CpBenchResult['signing']> {
  const claims = readJoinToken(token);
  const client = new ControlPlaneClient(xds, claims.trustDomain, claims.caPin);
  await client.fetchPinnedCa();
  const csrs: string[] = [];
  for (let i = 0; i < n; i++) csrs.push((await generateWorkloadKey(claims.service)).csrPem);
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const csr = csrs[next++]!;
      const t = performance.now();
      try { await client.requestCertificate(csr, { token }); lat.push(performance.now() - t); } catch { errors++; }
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  const perSecond = round(lat.length / secs, 1);
  log(`certificate signing: ${lat.length} in ${round(secs, 2)} s = ${perSecond}/s at concurrency ${concurrency} (errors ${errors})`);
  return { requests: n, concurrency, perSecond, latencyMs: dist(lat), errors };
}

// ---------------------------------------------------------------- report

function table(head: string[], rows: Array<Array<string | number>>): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function renderControlPlaneMarkdown(r: CpBenchResult): string {
  const out: string[] = [];
  const s = r.shape;
  out.push(`## Control plane (${s.services.toLocaleString('en')} services, ${s.endpoints.toLocaleString('en')} endpoints, ${s.connections} connected proxies: ${r.proxies.real} real + ${r.proxies.simulated} simulated)`, '');
  out.push(`Control plane start with ${(s.endpoints - s.connections).toLocaleString('en')} restored instances: ${r.controlPlaneStartupMs} ms; ${s.services + s.routes + s.policies} resources applied in ${r.applyResourcesMs} ms. Snapshot: ${round(r.initialPush.snapshotBytes / 1024, 0)} KiB of JSON.`, '');
  const d = (x: Dist) => [x.n, x.p50, x.p90, x.p99, x.max];
  out.push(table(['measure (ms)', 'n', 'p50', 'p90', 'p99', 'max'], [
    ['initial push: join → first config applied, per proxy', ...d(r.initialPush.perProxyMs)],
    ...Object.entries(r.convergence).map(([k, v]) => [`convergence: ${k === 'all' ? '**all changes**' : k} → all ${s.connections} ACKed`, ...d(v)]),
    ['change → the first proxy applied it', ...d(r.firstProxyMs)],
    ['REST apply call alone (in the above)', ...d(r.apiApplyMs)],
    ['proxy validate + compile per snapshot (simulated proxies)', ...d(r.proxyApplyMs)],
  ]), '');
  out.push(`Initial push, all ${r.proxies.simulated} simulated proxies joined at once (8 at a time) until all applied: ${r.initialPush.allMs} ms. NACKs: ${r.nacks}.`, '');
  if (r.proxies.realNodeArgs.length) out.push(`Real proxies started with \`node ${r.proxies.realNodeArgs.join(' ')}\`.`, '');
  out.push(table(['process', 'RSS after the config (MiB)', 'max while configs change', 'max under load'],
    Object.entries(r.realProxyRssMiB).map(([k, v]) => [`real proxy ${k}`, v.afterConfig, v.duringChanges, v.underLoad])), '');
  out.push(`Control plane: RSS ${r.controlPlane.rssIdleMiB} MiB after the initial push, max ${r.controlPlane.rssMaxMiB} MiB; CPU ${r.controlPlane.cpuSecondsPerRound} s per change round (${r.controlPlane.cpuPct}% of one core over the rounds).`, '');
  if (r.load) out.push(`Load through the real proxies during the RSS measurement: ${r.load.achievedRate} req/s achieved (target ${r.load.targetRate}), p50 ${r.load.p50} ms, p99 ${r.load.p99} ms, errors ${r.load.errors}.`, '');
  out.push(`Certificate signing: **${r.signing.perSecond} CSRs/s** (${r.signing.requests} requests, concurrency ${r.signing.concurrency}, new TLS connection each; latency p50 ${r.signing.latencyMs.p50} ms, p99 ${r.signing.latencyMs.p99} ms; errors ${r.signing.errors}).`, '');
  const maxRss = Math.max(...Object.values(r.realProxyRssMiB).flatMap((v) => [v.afterConfig, v.duringChanges, v.underLoad]).filter(Number.isFinite));
  out.push(table(['target', 'goal', 'measured', 'met'], [
    ['convergence p99, 1,000 services', '≤ 1 s', `${r.convergence.all.p99} ms`, r.convergence.all.p99 <= 1000 ? 'yes' : 'no'],
    ['proxy RSS with the 1,000-service config, under load', '≤ 60 MB', `${round(maxRss * 1.048576, 1)} MB (${maxRss} MiB)`, maxRss * 1.048576 <= 60 ? 'yes' : 'no'],
  ]), '');
  if (r.profile) {
    out.push(`Control-plane CPU profile (${r.profile.totalMs} ms sampled, idle excluded; ${r.profile.file}):`, '');
    out.push(table(['function', 'self %'], r.profile.top.map((f) => [`\`${f.fn}\``, f.selfPct])), '');
  }
  return out.join('\n');
}
