/**
 * `npm run bench` — Trellis against a direct connection, nginx and HAProxy, on loopback, in one run.
 * See docs/performance.md for what is measured and how to read it.
 *
 *   node dist/bench/run.js [--quick] [--profile] [--out DIR] [--no-control-plane]
 * The control-plane benchmark (bench/lib/cp-bench.ts) runs at the end; alone: node dist/bench/control-plane.js.
 */
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { ensureTools } from './lib/deps.js';
import { makePki } from './lib/pki.js';
import { median, openLoop, saturate, timeOne, type LatencyResult, type SaturateResult } from './lib/load.js';
import { BODY_SIZES, REPO_ROOT, startBackend, startHaproxyPair, startNginxPair, startTrellisMesh, type BodySize, type Target } from './lib/targets.js';
import { startTraceSink } from './lib/trace-sink.js';
import { cpuMicros, round, rssMiB, sleep, stopAllManaged } from './lib/util.js';
import { renderControlPlaneMarkdown, runControlPlaneBench } from './lib/cp-bench.js';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const PROFILE = argv.includes('--profile');
const CONTROL_PLANE = !argv.includes('--no-control-plane');
const outIdx = argv.indexOf('--out');
const OUT_DIR = outIdx >= 0 ? argv[outIdx + 1]! : join(REPO_ROOT, 'bench', 'results');

const CFG = QUICK
  ? { warmSeconds: 3, satSeconds: 4, satWarmup: 1, latSeconds: 6, latWarmup: 1, rates: [1000, 5000], firstSamples: 10, coldSamples: 2, profileSeconds: 8 }
  : { warmSeconds: 5, satSeconds: 10, satWarmup: 2, latSeconds: 15, latWarmup: 2, rates: [1000, 5000], firstSamples: 30, coldSamples: 5, profileSeconds: 15 };
const H1_CONNECTIONS = 32;
const H2_CONNECTIONS = 2, H2_STREAMS = 16;

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

interface CpuCell { role: string; usPerReq: number }
interface SatCell extends SaturateResult { target: string; size: BodySize; cpu: CpuCell[]; maxRssMiB: Record<string, number>; spansExported?: number }

const TRACED = 'trellis+tracing';

/** trellis_spans_dropped_total of the traced proxies, summed over reasons (0 when none were dropped). */
async function droppedSpans(admins: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const admin of admins) {
    const text = await (await fetch(`http://${admin}/metrics`)).text();
    for (const m of text.matchAll(/^trellis_spans_dropped_total\{[^}]*reason="([^"]+)"[^}]*\} (\d+)/gm)) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
}
interface LatCell extends LatencyResult { target: string; size: BodySize; cpu: CpuCell[] }

function sampleCpu(t: Target): Map<string, number> {
  return new Map(t.proxies.map((p) => [p.role, cpuMicros(p.pid)]));
}
function cpuPerReq(t: Target, before: Map<string, number>, requests: number): CpuCell[] {
  return t.proxies.map((p) => ({ role: p.role, usPerReq: round((cpuMicros(p.pid) - before.get(p.role)!) / Math.max(1, requests), 1) }));
}

async function main(): Promise<void> {
  const started = new Date();
  const tools = ensureTools(log);
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-'));
  workDir = dir;
  log(`work dir ${dir}; ${QUICK ? 'quick' : 'full'} run`);
  const pki = makePki(tools.openssl!, dir);

  const backend = await startBackend(tools.nginx!, dir);
  const direct: Target = { ...backend, name: 'direct', proxies: [] };
  const firstCold: Record<string, number> = {};
  const trellis = await startTrellisMesh(dir, backend.h1Port);
  firstCold.trellis = await timeOne(`${trellis.h1}/1k`);
  const nginx = await startNginxPair(tools.nginx!, dir, pki, backend.h1Port);
  firstCold.nginx = await timeOne(`${nginx.h1}/1k`);
  const haproxy = await startHaproxyPair(tools.haproxy!, dir, pki, backend.h1Port);
  firstCold.haproxy = await timeOne(`${haproxy.h1}/1k`);
  firstCold.direct = await timeOne(`${direct.h1}/1k`);
  // Issue #5: the same mesh with tracing on, every request sampled, spans exported over OTLP/HTTP to a
  // real local sink that accepts, counts and discards them. Measured in the saturation cells only.
  const sink = await startTraceSink();
  const traced = await startTrellisMesh(dir, backend.h1Port, [], { tracing: { otlpEndpoint: sink.url, sampling: 100 } }, TRACED);
  await timeOne(`${traced.h1}/1k`);
  const targets: Target[] = [direct, trellis, nginx, haproxy];
  const satTargets: Target[] = [direct, trellis, traced, nginx, haproxy];
  log(`started: ${targets.map((t) => `${t.name} ${t.h1}`).join(', ')}`);

  await sleep(1000);
  const idleRss: Record<string, number> = {};
  for (const t of [...targets, traced]) for (const p of t.proxies) idleRss[`${t.name}/${p.role}`] = round(rssMiB(p.pid), 1);
  idleRss['trellis/control-plane'] = round(rssMiB(trellis.controlPlane.pid), 1);
  idleRss['backend'] = round(rssMiB(backend.proxies[0]!.pid), 1);

  // Steady state, not start-up: every path serves traffic (unmeasured) before the first cell. A Node.js
  // proxy runs its first thousands of requests in the interpreter while V8 compiles the hot path; without
  // this the first Trellis cell measured JIT warm-up (≈2× the CPU per request of later cells).
  for (const t of satTargets) {
    for (const proto of ['h1', 'h2'] as const) {
      const base = proto === 'h1' ? t.h1 : t.h2;
      if (base) await saturate(tools.h2load!, { proto, url: `${base}/1k`, seconds: CFG.warmSeconds, warmupSeconds: 0, connections: proto === 'h1' ? H1_CONNECTIONS : H2_CONNECTIONS, streams: H2_STREAMS });
    }
  }
  log(`warmed every path (${CFG.warmSeconds}s of h1 and of h2 each)`);

  // Throughput at saturation: h2load, fixed concurrency, interleaving targets inside each cell.
  const sat: SatCell[] = [];
  for (const proto of ['h1', 'h2'] as const) {
    for (const size of Object.keys(BODY_SIZES) as BodySize[]) {
      for (const t of satTargets) {
        const base = proto === 'h1' ? t.h1 : t.h2;
        if (!base) continue;
        const maxRss: Record<string, number> = {};
        const rssTimer = setInterval(() => {
          for (const p of t.proxies) { try { maxRss[p.role] = Math.max(maxRss[p.role] ?? 0, round(rssMiB(p.pid), 1)); } catch { /* gone */ } }
        }, 250);
        // Warm-up happens inside h2load; CPU is sampled around the whole run and divided by every request
        // h2load reports, warm-up excluded, so the figure slightly overstates µs/request (by ≤ warmup/total).
        const before = sampleCpu(t);
        const spansBefore = sink.spans;
        const r = await saturate(tools.h2load!, { proto, url: `${base}/${size}`, seconds: CFG.satSeconds, warmupSeconds: CFG.satWarmup,
          connections: proto === 'h1' ? H1_CONNECTIONS : H2_CONNECTIONS, streams: H2_STREAMS });
        const cpuWindowRequests = r.succeeded * (CFG.satSeconds + CFG.satWarmup) / CFG.satSeconds;
        const cpu = cpuPerReq(t, before, cpuWindowRequests);
        clearInterval(rssTimer);
        if (t === traced) await sleep(1500); // the exporter flushes at least every second
        sat.push({ ...r, target: t.name, size, cpu, maxRssMiB: maxRss, ...(t === traced ? { spansExported: sink.spans - spansBefore } : {}) });
        log(`saturate ${proto} ${size} ${t.name}: ${r.rps} req/s (ok ${r.succeeded}, failed ${r.failed}, non-2xx ${r.non2xx}) cpu ${cpu.map((c) => `${c.role}=${c.usPerReq}µs`).join(' ')}`);
        await sleep(500);
      }
    }
  }

  // Latency at fixed rates (open loop, coordinated-omission corrected), 1 KiB bodies, HTTP/1.1 keep-alive.
  const lat: LatCell[] = [];
  for (const rate of CFG.rates) {
    for (const t of targets) {
      const before = sampleCpu(t);
      const r = await openLoop({ url: `${t.h1}/1k`, rate, seconds: CFG.latSeconds, warmupSeconds: CFG.latWarmup });
      const cpu = cpuPerReq(t, before, r.completed * (CFG.latSeconds + CFG.latWarmup) / CFG.latSeconds);
      lat.push({ ...r, target: t.name, size: '1k', cpu });
      log(`latency ${rate}/s ${t.name}: achieved ${r.achievedRate}/s p50 ${r.p50} p99 ${r.p99} p99.9 ${r.p999} max ${r.max} ms (errors ${r.errors}, dropped ${r.dropped})`);
      await sleep(500);
    }
  }

  // First-request cost: a fresh client TCP connection vs a reused keep-alive one, on every path.
  const first: Record<string, { fresh: number; reused: number; cold?: number; coldSamples?: number[] }> = {};
  for (const t of targets) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await timeOne(`${t.h1}/1k`, agent);
    const reused: number[] = [], fresh: number[] = [];
    for (let i = 0; i < CFG.firstSamples; i++) {
      reused.push(await timeOne(`${t.h1}/1k`, agent));
      fresh.push(await timeOne(`${t.h1}/1k`));
    }
    agent.destroy();
    first[t.name] = { fresh: round(median(fresh), 3), reused: round(median(reused), 3), cold: round(firstCold[t.name] ?? NaN, 3) };
  }
  // Trellis: the first request through a just-started client proxy pays the mTLS handshake + HTTP/2 session setup.
  const coldSamples: number[] = [];
  for (let i = 0; i < CFG.coldSamples; i++) {
    const p = await trellis.freshClientProxy();
    coldSamples.push(round(await timeOne(`${p.url}/1k`), 3));
    await p.stop();
  }
  first.trellis!.coldSamples = coldSamples;
  first.trellis!.cold = round(median(coldSamples), 3);

  const loadRss: Record<string, number> = {};
  for (const c of sat) for (const [role, v] of Object.entries(c.maxRssMiB)) loadRss[`${c.target}/${role}`] = Math.max(loadRss[`${c.target}/${role}`] ?? 0, v);

  const spansDropped = await droppedSpans(traced.admins);
  const tracing = { sink: { requests: sink.requests, spans: sink.spans, bytes: sink.bytes }, spansDropped };
  await trellis.stop(); await traced.stop(); await nginx.stop(); await haproxy.stop(); await sink.close();

  let profile: ProfileSummary | undefined;
  if (PROFILE) {
    try { profile = await profileTrellis(dir, tools.h2load!, backend.h1Port); } catch (err) { log(`profile failed (results kept): ${(err as Error).message}`); }
  }
  await backend.stop();

  const result = {
    date: started.toISOString(),
    command: `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, memGiB: round(totalmem() / 2 ** 30, 1), node: process.version, kernel: readFileSync('/proc/version', 'utf8').split(' ')[2] },
    tools: toolVersions(tools),
    config: { ...CFG, h1Connections: H1_CONNECTIONS, h2Connections: H2_CONNECTIONS, h2Streams: H2_STREAMS },
    saturation: sat, latency: lat, firstRequestMs: first, rssMiB: { idle: idleRss, underLoadMax: loadRss }, tracing, profile,
  };
  const controlPlane = CONTROL_PLANE ? await runControlPlaneBench({ quick: QUICK, profile: PROFILE, outDir: OUT_DIR, log }) : undefined;
  Object.assign(result, { controlPlane });
  const md = renderMarkdown(result) + (controlPlane ? '\n\n' + renderControlPlaneMarkdown(controlPlane) : '');
  process.stdout.write(md + '\n');
  mkdirSync(OUT_DIR, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(OUT_DIR, `bench-${stamp}.json`), JSON.stringify(result, null, 2) + '\n');
  writeFileSync(join(OUT_DIR, `bench-${stamp}.md`), md + '\n');
  log(`results: ${join(OUT_DIR, `bench-${stamp}.{json,md}`)}`);
  rmSync(dir, { recursive: true, force: true });
}

function toolVersions(tools: Record<string, string>): Record<string, string> {
  const v = (cmd: string, args: string[]) => { try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!.trim(); } catch (e) { return String((e as { stderr?: string }).stderr ?? '').split('\n')[0]!.trim(); } };
  return { nginx: v(tools.nginx!, ['-v']), haproxy: v(tools.haproxy!, ['-v']), h2load: v(tools.h2load!, ['--version']), openssl: v(tools.openssl!, ['version']) };
}

interface ProfileSummary { seconds: number; rps: number; files: string[]; roles: Record<string, { totalMs: number; topFunctions: Array<{ fn: string; selfPct: number }>; byArea: Array<{ area: string; selfPct: number }> }> }

/** Runs a Trellis mesh whose proxies write V8 CPU profiles, loads it with h1 1 KiB, summarises self time. */
async function profileTrellis(dir: string, h2load: string, backendPort: number): Promise<ProfileSummary> {
  const profDir = join(OUT_DIR, `cpuprofile-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(profDir, { recursive: true });
  const mesh = await startTrellisMesh(dir, backendPort, ['--cpu-prof', `--cpu-prof-dir=${profDir}`]);
  const pids = new Map(mesh.proxies.map((p) => [p.pid, p.role]));
  const r = await saturate(h2load, { proto: 'h1', url: `${mesh.h1}/1k`, seconds: CFG.profileSeconds, warmupSeconds: 1, connections: H1_CONNECTIONS, streams: 1 });
  log(`profile run: ${r.rps} req/s`);
  await mesh.stop();
  await sleep(500);
  const roles: ProfileSummary['roles'] = {};
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  for (const f of files) {
    const pid = Number(/CPU\.\d+\.\d+\.(\d+)\./.exec(f)?.[1]);
    const role = pids.get(pid);
    if (!role) continue;
    roles[role] = summariseProfile(JSON.parse(readFileSync(join(profDir, f), 'utf8')) as CpuProfile);
  }
  return { seconds: CFG.profileSeconds, rps: r.rps, files: files.map((f) => join(profDir, f)), roles };
}

interface CpuProfile { nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

function summariseProfile(p: CpuProfile): ProfileSummary['roles'][string] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  let total = 0;
  const fnTime = new Map<string, number>(), areaTime = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') continue;
    total += us;
    const file = cf.url.replace(/^file:\/\/.*?\/dist\//, 'dist/').replace(/^node:/, 'node:');
    const fn = `${cf.functionName || '(anonymous)'} ${file ? `${file}:${cf.lineNumber + 1}` : ''}`.trim();
    fnTime.set(fn, (fnTime.get(fn) ?? 0) + us);
    areaTime.set(area(cf.url, cf.functionName), (areaTime.get(area(cf.url, cf.functionName)) ?? 0) + us);
  }
  const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  return {
    totalMs: round(total / 1000, 0),
    topFunctions: top(fnTime, 15).map(([fn, us]) => ({ fn, selfPct: round((100 * us) / total, 1) })),
    byArea: top(areaTime, 12).map(([a, us]) => ({ area: a, selfPct: round((100 * us) / total, 1) })),
  };
}

function area(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native/builtin)';
  const m = /\/dist\/src\/(.*)$/.exec(url);
  if (m) return `trellis ${m[1]!.split('/').slice(0, 2).join('/')}`;
  if (url.includes('node_modules/')) return `dep ${url.split('node_modules/')[1]!.split('/')[0]}`;
  const n = /^node:internal\/(.*)$/.exec(url) ?? /^node:(.*)$/.exec(url);
  if (n) return `node ${n[1]!.split('/').slice(0, 2).join('/')}`;
  return url;
}

// ---------- report ----------

type Result = {
  date: string; command: string; machine: Record<string, unknown>; tools: Record<string, string>; config: Record<string, unknown>;
  saturation: SatCell[]; latency: LatCell[]; firstRequestMs: Record<string, { fresh: number; reused: number; cold?: number; coldSamples?: number[] }>;
  tracing?: { sink: { requests: number; spans: number; bytes: number }; spansDropped: Record<string, number> };
  rssMiB: { idle: Record<string, number>; underLoadMax: Record<string, number> }; profile?: ProfileSummary;
};

function table(head: string[], rows: Array<Array<string | number>>): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function renderMarkdown(r: Result): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(`# Trellis benchmark — ${r.date}`, '',
    `Command: \`${r.command}\`. Machine: ${m.cpus} CPUs (${m.model}), ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}.`,
    `Tools: ${Object.values(r.tools).join('; ')}. Everything on 127.0.0.1; load generator, proxies and backend share the same ${m.cpus} cores.`, '');

  const cells = [...new Set(r.saturation.map((c) => `${c.proto} ${c.size}`))];
  const targets = [...new Set(r.saturation.map((c) => c.target))];
  const get = (t: string, cell: string) => r.saturation.find((c) => c.target === t && `${c.proto} ${c.size}` === cell);
  out.push(`## Throughput at saturation (req/s; h2load -t1, h1: ${r.config.h1Connections} connections; h2: ${r.config.h2Connections}×${r.config.h2Streams} streams; ${r.config.satSeconds}s)`, '');
  out.push(table(['path', ...cells], targets.map((t) => [t, ...cells.map((c) => {
    const x = get(t, c); const d = get('direct', c);
    if (!x) return '–';
    const bad = x.failed || x.non2xx ? ` (${x.failed} failed, ${x.non2xx} non-2xx)` : '';
    return t === 'direct' || !d ? `${x.rps}${bad}` : `${x.rps} (${round((100 * x.rps) / d.rps, 0)}%)${bad}`;
  })])), '');

  out.push('## Proxy CPU per request at saturation (µs of utime+stime per request; outbound + inbound = total)', '');
  out.push(table(['path', ...cells], targets.filter((t) => t !== 'direct').map((t) => [t, ...cells.map((c) => {
    const x = get(t, c); if (!x) return '–';
    const sum = x.cpu.reduce((a, b) => a + b.usPerReq, 0);
    return `${x.cpu.map((y) => y.usPerReq).join(' + ')} = **${round(sum, 1)}**`;
  })])), '');
  const ratioRows = cells.map((c) => {
    const tr = get('trellis', c), ng = get('nginx', c), hp = get('haproxy', c);
    const sum = (x?: SatCell) => x ? x.cpu.reduce((a, b) => a + b.usPerReq, 0) : NaN;
    return [c, round(sum(tr) / sum(ng), 2) + '×', round(sum(tr) / sum(hp), 2) + '×'];
  });
  out.push(table(['cell', 'Trellis CPU / nginx CPU', 'Trellis CPU / HAProxy CPU'], ratioRows), '');

  if (r.saturation.some((c) => c.target === TRACED)) {
    out.push('## Tracing overhead (MeshConfig.tracing: every request sampled, OTLP/HTTP JSON to a local sink that counts and discards)', '');
    out.push(table(['cell', 'trellis req/s', 'trellis+tracing req/s', 'trellis CPU µs/req', 'trellis+tracing CPU µs/req', 'added CPU', 'spans exported (2 per request expected)'], cells.map((c) => {
      const p = get('trellis', c), t = get(TRACED, c);
      if (!p || !t) return [c, '–', '–', '–', '–', '–', '–'];
      const cp = p.cpu.reduce((a, b) => a + b.usPerReq, 0), ct = t.cpu.reduce((a, b) => a + b.usPerReq, 0);
      const perReq = t.spansExported !== undefined ? ` (${round(t.spansExported / Math.max(1, t.succeeded * (Number(r.config.satSeconds) + Number(r.config.satWarmup)) / Number(r.config.satSeconds)), 2)} per request)` : '';
      return [c, p.rps, `${t.rps} (${round((100 * t.rps) / p.rps - 100, 0)}%)`, round(cp, 1), round(ct, 1), `+${round(ct - cp, 1)} µs (+${round((100 * (ct - cp)) / cp, 0)}%)`, `${t.spansExported ?? '–'}${perReq}`];
    })), '');
    if (r.tracing) {
      const dropped = Object.entries(r.tracing.spansDropped);
      out.push(`Sink: ${r.tracing.sink.spans} spans in ${r.tracing.sink.requests} OTLP requests (${round(r.tracing.sink.bytes / 2 ** 20, 1)} MiB); trellis_spans_dropped_total: ${dropped.length ? dropped.map(([k, v]) => `${k}=${v}`).join(', ') : '0'}.`, '');
    }
  }

  out.push(`## Latency at fixed rates (ms, HTTP/1.1 keep-alive, 1 KiB, open loop from intended send time, ${r.config.latSeconds}s)`, '');
  out.push(table(['path', 'rate', 'achieved', 'p50', 'p90', 'p99', 'p99.9', 'max', 'errors', 'dropped', 'added p99 vs direct', 'proxy CPU µs/req'],
    r.latency.map((x) => {
      const d = r.latency.find((y) => y.target === 'direct' && y.targetRate === x.targetRate);
      return [x.target, x.targetRate, x.achievedRate, x.p50, x.p90, x.p99, x.p999, x.max, x.errors, x.dropped,
        x.target === 'direct' || !d ? '–' : round(x.p99 - d.p99, 3),
        x.cpu.length ? `${x.cpu.map((c) => c.usPerReq).join(' + ')}` : '–'];
    })), '');

  out.push('## Proxy memory (VmRSS, MiB)', '');
  out.push(table(['process', 'idle', 'under load (max)'], Object.keys(r.rssMiB.idle).map((k) => [k, r.rssMiB.idle[k]!, r.rssMiB.underLoadMax[k] ?? '–'])), '');

  out.push('## First request (ms, 1 KiB, HTTP/1.1)', '');
  out.push(table(['path', 'reused keep-alive connection (median)', 'fresh client TCP connection (median)', 'first request after the proxies start (new mTLS session)'],
    Object.entries(r.firstRequestMs).map(([t, x]) => [t, x.reused, x.fresh, x.coldSamples ? `${x.cold} (median of ${x.coldSamples.length}: ${x.coldSamples.join(', ')})` : `${x.cold}`])), '');

  const l1 = r.latency.find((x) => x.target === 'trellis' && x.targetRate === 1000);
  const d1 = r.latency.find((x) => x.target === 'direct' && x.targetRate === 1000);
  const h1 = get('trellis', 'h1 1k'), n1 = get('nginx', 'h1 1k');
  const sum = (x?: SatCell) => x ? x.cpu.reduce((a, b) => a + b.usPerReq, 0) : NaN;
  const maxRss = Math.max(...Object.entries(r.rssMiB.underLoadMax).filter(([k]) => k.startsWith('trellis/')).map(([, v]) => v));
  const cpuRatio = round(sum(h1) / sum(n1), 2);
  const addedP99 = l1 && d1 ? round(l1.p99 - d1.p99, 3) : NaN;
  out.push('## Targets', '');
  out.push(table(['target', 'goal', 'measured', 'met'], [
    ['Trellis CPU/request vs nginx (h1 1 KiB)', '≤ 2×', `${cpuRatio}×`, cpuRatio <= 2 ? 'yes' : 'no'],
    ['added p99 over direct at 1,000 req/s', '≤ 1 ms', `${addedP99} ms`, addedP99 <= 1 ? 'yes' : 'no'],
    ['proxy RSS under load', '≤ 60 MB', `${maxRss} MiB`, maxRss * 1.048576 <= 60 ? 'yes' : 'no'],
    ['control-plane convergence p99, 1,000 services', '≤ 1 s', CONTROL_PLANE ? 'see "Control plane" below' : 'not measured (--no-control-plane)', '–'],
  ]), '');

  if (r.profile) {
    out.push(`## Trellis proxy CPU profile (h1 1 KiB, ${r.profile.rps} req/s under --cpu-prof)`, '');
    for (const [role, p] of Object.entries(r.profile.roles)) {
      out.push(`### ${role} (${p.totalMs} ms sampled, idle excluded)`, '');
      out.push(table(['area', 'self %'], p.byArea.map((a) => [a.area, a.selfPct])), '');
      out.push(table(['function', 'self %'], p.topFunctions.map((f) => [`\`${f.fn}\``, f.selfPct])), '');
    }
  }
  return out.join('\n');
}

let workDir: string | undefined;
main().then(async () => { await stopAllManaged(); process.exit(0); }, async (err) => {
  log(`FAILED: ${(err as Error).stack ?? err}`);
  await stopAllManaged();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { void stopAllManaged().then(() => process.exit(130)); });
