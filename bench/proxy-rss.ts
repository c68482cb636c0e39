/**
 * What a `trellis proxy` process costs in memory before any traffic (issue #7), and where it comes from:
 *
 *   node dist/bench/proxy-rss.js [--runs 3] [--settle 3s] [--json FILE] [--no-modules] [--no-policies]
 *
 * 1. Idle proxy: a real control plane and one real `trellis proxy` (port 0, loopback, as bench/lib/targets.ts
 *    starts them); once the proxy is ready (its first config applied), it reads the proxy's VmRSS (and
 *    RssAnon / RssFile) from /proc 3 s later, and again after --settle (default 30 s): by then V8's memory
 *    reducer has usually run a GC on the idle process (around 15 s after start-up). Median of --runs fresh runs.
 *    With policies: the same, with a MeshConfig that enables tracing and access logs and a JWTAuthentication
 *    (inline JWKS) targeting the proxy's service in its first config, so the modules optional features load
 *    (jose) are counted too.
 * 2. Module costs: for each module, a fresh `node --expose-gc` imports it, collects garbage and reports
 *    its RSS minus the RSS of the same fresh node before the import. Median of --runs.
 *
 * See docs/performance.md "Proxy memory at rest".
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrellisClient } from '../src/sdk/client.js';
import { REPO_ROOT, startTrellis } from './lib/targets.js';
import { round, sleep, stopAllManaged } from './lib/util.js';
import { parseDuration } from '../src/api/duration.js';

const argv = process.argv.slice(2);
const arg = (flag: string): string | undefined => { const i = argv.indexOf(flag); return i >= 0 ? argv[i + 1] : undefined; };
const RUNS = Number(arg('--runs') ?? 3);
const EARLY_MS = 3000;
const SETTLE_MS = parseDuration(arg('--settle') ?? '30s');
const JSON_OUT = arg('--json');
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) throw new Error('--runs: 1 to 20');
if (!(SETTLE_MS >= EARLY_MS && SETTLE_MS <= 600_000)) throw new Error('--settle: 3s to 10m');

const log = (s: string) => process.stderr.write(`[proxy-rss] ${s}\n`);
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]!; };

interface Memory { vmRss: number; rssAnon: number; rssFile: number }

/** VmRSS, RssAnon and RssFile of a process, in MiB (/proc/PID/status). */
function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => { const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status); return m ? Number(m[1]) / 1024 : NaN; };
  return { vmRss: kb('VmRSS'), rssAnon: kb('RssAnon'), rssFile: kb('RssFile') };
}

/** The resources of the "with policies" scenario: tracing, access logs, a JWTAuthentication of the proxy's service. */
function policies(service: string): unknown[] {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256', use: 'sig' };
  const meta = (name: string) => ({ apiVersion: 'trellis.dev/v1alpha1', metadata: { name } });
  return [
    { ...meta('default'), kind: 'MeshConfig', spec: { tracing: { otlpEndpoint: 'http://127.0.0.1:9', sampling: 100 }, accessLog: { format: 'json' } } },
    { ...meta(service), kind: 'Service', spec: { protocol: 'http' } },
    { ...meta(`${service}-jwt`), kind: 'JWTAuthentication', spec: { targetRef: { name: service }, issuer: 'https://issuer.bench', jwks: { inline: JSON.stringify({ keys: [jwk] }) }, required: false } },
  ];
}

interface IdleSample { early: Memory; settled: Memory }

/** One control plane and one proxy; the proxy's memory EARLY_MS and SETTLE_MS after it is ready. */
async function idleProxy(dir: string, withPolicies: boolean): Promise<IdleSample> {
  const dataDir = mkdtempSync(join(tmpdir(), 'trellis-rss-cp-'));
  const cp = await startTrellis('trellis-cp', ['control-plane', '--data-dir', dataDir, '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0'], ['api', 'xds'], false, {});
  try {
    const api = new TrellisClient({ baseUrl: `http://${cp.listening.api}` });
    const service = 'rss';
    if (withPolicies) await api.apply(policies(service));
    const tokenFile = join(dir, `${randomUUID()}.token`);
    writeFileSync(tokenFile, (await api.createToken(service)).token, { mode: 0o600 });
    const proxy = await startTrellis('trellis-proxy', ['proxy', '--service', service, '--app', '127.0.0.1:9', '--inbound', '127.0.0.1:0',
      '--token-file', tokenFile, '--drain-timeout', '1s'], ['admin', 'inbound'], true, {});
    try {
      await sleep(EARLY_MS);
      const early = memoryOf(proxy.m.pid);
      await sleep(SETTLE_MS - EARLY_MS);
      const cfg = await (await fetch(`http://${proxy.listening.admin}/config`)).json() as { version: string | null; lastNack: unknown };
      if (cfg.version === null || cfg.lastNack) throw new Error(`the proxy has no config or NACKed: ${JSON.stringify(cfg)}`);
      return { early, settled: memoryOf(proxy.m.pid) };
    } finally {
      await proxy.m.stop();
    }
  } finally {
    await cp.m.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

interface ModuleCost { module: string; specifiers: string[]; baseMiB: number; costMiB: number }

/** RSS after importing `specifiers` (in order) in a fresh node, minus its RSS before, both after a full GC. */
function importCost(specifiers: string[]): { base: number; cost: number } {
  const code = `const rss = () => { gc(); gc(); return process.memoryUsage().rss / 1048576; };
const base = rss();
for (const s of ${JSON.stringify(specifiers)}) await import(s);
console.log(JSON.stringify({ base, after: rss() }));`;
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { cwd: REPO_ROOT, encoding: 'utf8' });
  const { base, after } = JSON.parse(out.trim().split('\n').pop()!) as { base: number; after: number };
  return { base, cost: after - base };
}

const dist = (p: string) => new URL(`file://${join(REPO_ROOT, 'dist', p)}`).href;

/** The modules measured: third-party packages (whole and the part the proxy imports), node built-ins, Trellis entries. */
const MODULES: Array<{ module: string; specifiers: string[] }> = [
  { module: 'zod', specifiers: ['zod'] },
  { module: 'prom-client (index: every metric type, default metrics, pushgateway, cluster)', specifiers: ['prom-client'] },
  { module: 'prom-client core (Registry, Counter, Gauge: what the proxy loads)', specifiers: ['prom-client/lib/registry.js', 'prom-client/lib/counter.js', 'prom-client/lib/gauge.js'] },
  { module: 'jose (index)', specifiers: ['jose'] },
  { module: 'jose/jwt/decode + jose/decode/protected_header', specifiers: ['jose/jwt/decode', 'jose/decode/protected_header'] },
  { module: 'undici (index)', specifiers: ['undici'] },
  { module: 'undici Pool (lib/dispatcher/pool.js: what the proxy loads for HTTP/1.1 upstreams)', specifiers: ['undici/lib/dispatcher/pool.js'] },
  { module: 'yaml', specifiers: ['yaml'] },
  { module: 'commander', specifiers: ['commander'] },
  { module: '@peculiar/x509 (with the reflect-metadata shim)', specifiers: [dist('src/pki/reflect-shim.js'), '@peculiar/x509'] },
  { module: 'node:http, node:http2, node:tls, node:net, node:crypto', specifiers: ['node:http', 'node:http2', 'node:tls', 'node:net', 'node:crypto'] },
  { module: 'dist/src/proxy/proxy.js', specifiers: [dist('src/proxy/proxy.js')] },
  { module: 'trellis proxy entry (dist/src/cli/main.js + the proxy command)', specifiers: [dist('src/cli/main.js'), dist('src/cli/commands/proxy.js')] },
];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-rss-'));
  const started = new Date();
  const scenarios: Array<{ name: string; withPolicies: boolean }> = [{ name: 'default config', withPolicies: false }];
  if (!argv.includes('--no-policies')) scenarios.push({ name: 'tracing + access log + JWTAuthentication', withPolicies: true });
  const idle: Array<{ scenario: string; at: string; runs: Memory[]; median: Memory }> = [];
  const summarise = (runs: Memory[]): Memory => ({
    vmRss: round(median(runs.map((r) => r.vmRss)), 1), rssAnon: round(median(runs.map((r) => r.rssAnon)), 1), rssFile: round(median(runs.map((r) => r.rssFile)), 1),
  });
  try {
    for (const s of scenarios) {
      const runs: IdleSample[] = [];
      for (let i = 0; i < RUNS; i++) {
        const m = await idleProxy(dir, s.withPolicies);
        log(`${s.name}, run ${i + 1}/${RUNS}: VmRSS ${m.early.vmRss.toFixed(1)} MiB at ready + ${EARLY_MS / 1000}s, ${m.settled.vmRss.toFixed(1)} MiB at ready + ${SETTLE_MS / 1000}s`);
        runs.push(m);
      }
      for (const at of ['early', 'settled'] as const) {
        const samples = runs.map((r) => r[at]);
        idle.push({ scenario: s.name, at: `ready + ${(at === 'early' ? EARLY_MS : SETTLE_MS) / 1000}s`, runs: samples, median: summarise(samples) });
      }
    }
  } finally {
    await stopAllManaged();
    rmSync(dir, { recursive: true, force: true });
  }
  const modules: ModuleCost[] = [];
  if (!argv.includes('--no-modules')) {
    for (const m of MODULES) {
      const samples = Array.from({ length: RUNS }, () => importCost(m.specifiers));
      modules.push({ ...m, baseMiB: round(median(samples.map((s) => s.base)), 1), costMiB: round(median(samples.map((s) => s.cost)), 1) });
      log(`${m.module}: +${modules.at(-1)!.costMiB} MiB`);
    }
  }
  const lines = [
    `# trellis proxy memory at rest — ${started.toISOString()}`,
    '',
    `Node ${process.version}; median of ${RUNS} run(s); "ready" is the proxy's ready announcement (first config applied).`,
    '',
    '| Proxy (idle) | when | VmRSS MiB | RssAnon MiB | RssFile MiB | runs (VmRSS) |',
    '|---|---|---:|---:|---:|---|',
    ...idle.map((i) => `| ${i.scenario} | ${i.at} | ${i.median.vmRss} | ${i.median.rssAnon} | ${i.median.rssFile} | ${i.runs.map((r) => r.vmRss.toFixed(1)).join(', ')} |`),
  ];
  if (modules.length) {
    lines.push('', `| Module (imported alone in a fresh node, after GC) | + RSS MiB |`, '|---|---:|',
      ...modules.map((m) => `| ${m.module} | ${m.costMiB.toFixed(1)} |`),
      '', `A fresh \`node --expose-gc\` after GC: ${median(modules.map((m) => m.baseMiB)).toFixed(1)} MiB.`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ started: started.toISOString(), node: process.version, runs: RUNS, earlyMs: EARLY_MS, settleMs: SETTLE_MS, idle, modules }, null, 2) + '\n');
}

main().catch(async (err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  await stopAllManaged();
  process.exit(1);
});
