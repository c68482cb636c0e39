/**
 * `trellis demo`: a real mesh on one machine. It starts the control plane and one sidecar proxy per
 * shop instance as child processes (the same binaries and flags as a deployment), runs the shop's
 * services in this process (HTTP, and one gRPC hop: checkout → payments), applies a canary HTTPRoute,
 * a TrafficPolicy and an AuthorizationPolicy (only checkout may call payments) through the API, drives
 * steady traffic (loadgen → web) plus a rogue caller the policy refuses, and prints a summary every few seconds.
 * SIGINT/SIGTERM/SIGHUP (or --duration) stops everything: proxies first, then the control plane, then the
 * apps; no process is left behind.
 */
import { pollUntil } from '../shared/poll.js';
import { mkdtempSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrellisClient } from '../sdk/client.js';
import { announce, announceListening } from '../shared/log.js';
import { spawnTrellis, startReaper, type Child } from './children.js';
import { banner, formatRogue, ROGUE_EVERY_MS } from './banner.js';
import { CANARY_ROUTE, CATALOG_POLICY, PAYMENTS_AUTHZ, SERVICES } from './resources.js';
import { RogueApp } from './rogue.js';
import { SHOP_INSTANCES, startShopApp, type ShopApp } from './shop.js';
import { formatWindow, TrafficGenerator } from './traffic.js';

export interface DemoOptions {
  /** Control plane REST API (and dashboard) address HOST:PORT. */
  api: string;
  /** The control plane's data dir; default: a fresh temp dir removed at exit. */
  dataDir?: string;
  /** Stop by itself after this many ms. */
  durationMs?: number;
  quiet: boolean;
  /** Requests per second of the traffic generator. */
  rate: number;
  /** Summary period in ms. */
  summaryEveryMs: number;
}

/** Traffic should flow within this long after launch (issue #6); slower start-ups are reported, not failed. */
const STARTUP_BUDGET_MS = 30_000;
/** Start-up gives up after this long: only a machine far busier than the budget assumes gets near it. */
const STARTUP_TIMEOUT_MS = 120_000;
function until<T>(what: string, deadline: number, check: () => Promise<T | undefined | false>): Promise<T> {
  return pollUntil(check, { what, timeoutMs: Math.max(0, deadline - Date.now()), intervalMs: 100 });
}

async function proxyConfig(admin: string): Promise<Record<string, { endpoints: unknown[] }>> {
  const res = await fetch(`http://${admin}/config`, { signal: AbortSignal.timeout(2000) });
  const cfg = await res.json() as { snapshot?: { clusters?: Record<string, { endpoints: unknown[] }> } };
  return cfg.snapshot?.clusters ?? {};
}

/** Runs the demo until a signal or the duration; resolves with the exit code. */
export async function runDemo(opts: DemoOptions): Promise<number> {
  const say = (text: string) => { if (!opts.quiet) process.stdout.write(text + '\n'); };
  const warn = (text: string) => process.stderr.write(`demo: ${text}\n`);
  const startedAt = Date.now();
  const deadline = startedAt + STARTUP_TIMEOUT_MS;

  // Synchronous: no await between here and the signal handlers below, so no signal can leave the dir behind.
  const workDir = mkdtempSync(join(tmpdir(), 'trellis-demo-'));
  const dataDir = opts.dataDir ?? join(workDir, 'data');
  const children: Child[] = [];
  const proxies: Child[] = [];
  let controlPlane: Child | undefined;
  const apps: ShopApp[] = [];
  let traffic: TrafficGenerator | undefined;
  let rogue: RogueApp | undefined;
  const timers: NodeJS.Timeout[] = [];

  // Last resorts: if this process exits abruptly, take the children with it; if it is killed outright
  // (SIGKILL runs no handler), the reaper process does.
  const killAll = () => { for (const c of children) if (c.running()) c.proc.kill('SIGKILL'); };
  process.once('exit', killAll);
  const reaper = startReaper(workDir);
  announce('child', { pid: reaper.pid, name: 'reaper' });

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => { resolveDone = r; });
  let stopping: Promise<void> | undefined;
  const shutdown = (code: number, why: string): Promise<void> => {
    stopping ??= (async () => {
      say(`stopping (${why})...`);
      for (const t of timers) clearInterval(t);
      await Promise.all([traffic?.stop(), rogue?.stopAttempts()]);
      // Proxies first (they drain and deregister), then the control plane, then the apps.
      await Promise.all(proxies.map((p) => p.stop(10_000)));
      await controlPlane?.stop(10_000);
      await Promise.all(children.map((c) => c.stop(5_000)));
      await Promise.all(apps.map((a) => a.close()));
      await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
      await reaper.close();
      process.off('exit', killAll);
      say('demo stopped: every process exited');
      resolveDone(code);
    })();
    return stopping;
  };
  const onSignal = (signal: NodeJS.Signals) => { void shutdown(0, signal); };
  // SIGHUP too: closing the terminal must not leave the children (own process groups) running.
  const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const sig of SIGNALS) process.on(sig, onSignal);
  const watch = (child: Child) => {
    children.push(child);
    reaper.track(child.pid);
    announce('child', { pid: child.pid, name: child.name });
    void child.exited.then(({ code, signal }) => {
      reaper.forget(child.pid);
      if (stopping) return;
      warn(`${child.name} exited unexpectedly (code ${code}, signal ${signal})\n${child.stderrTail().trim()}`);
      if (child === controlPlane && child.stderrTail().includes('EADDRINUSE')) {
        warn(`the API address ${opts.api} is taken (another demo or control plane?): stop it, or pick another with --api 127.0.0.1:PORT`);
      }
      void shutdown(1, `${child.name} exited`);
    });
  };

  try {
    // 1. The control plane.
    const cpArgs = ['control-plane', '--data-dir', dataDir, '--api', opts.api, '--xds', '127.0.0.1:0'];
    controlPlane = spawnTrellis('control-plane', cpArgs, { expect: ['api', 'xds'], timeoutMs: deadline - Date.now() });
    watch(controlPlane);
    await controlPlane.started;
    const api = controlPlane.listening.api!;
    announceListening('api', api);
    const client = new TrellisClient({ baseUrl: `http://${api}`, timeoutMs: 10_000 });
    await until('the control plane to be ready', deadline, async () => (await client.ready()) && true);

    // 2. The services and their routing config first, so every proxy's first snapshot already has it.
    await client.apply([...SERVICES, CANARY_ROUTE, CATALOG_POLICY, PAYMENTS_AUTHZ]);

    // 3. The shop's apps, a join token per service, and a sidecar per instance.
    await mkdir(join(workDir, 'tokens'), { mode: 0o700 });
    const tokenFiles = new Map<string, string>();
    for (const service of new Set(SHOP_INSTANCES.map((i) => i.service))) {
      const { token } = await client.createToken(service, '24h');
      const file = join(workDir, 'tokens', `${service}.token`);
      await writeFile(file, token, { mode: 0o600 });
      tokenFiles.set(service, file);
    }
    const sidecars = await Promise.all(SHOP_INSTANCES.map(async ({ service, version, protocol, outbound }) => {
      const app = service === 'rogue' ? (rogue = await RogueApp.start())
        : service === 'loadgen' ? (traffic = await TrafficGenerator.start(opts.rate))
          : await startShopApp(service, version);
      apps.push(app);
      if (stopping) throw new Error('stopped');
      const proxy = spawnTrellis(`proxy ${service} ${version}`, [
        'proxy', '--service', service, '--app', app.address, '--protocol', protocol, '--inbound', '127.0.0.1:0',
        '--token-file', tokenFiles.get(service)!, '--labels', `version=${version}`,
        ...outbound.flatMap((name) => ['--outbound', `${name}=127.0.0.1:0`]),
        '--http-proxy', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--drain-timeout', '2s',
      ], {
        expect: ['admin', 'inbound', 'http-proxy', ...outbound.map((name) => `outbound:${name}`)],
        ready: true, timeoutMs: Math.max(1000, deadline - Date.now()),
      });
      proxies.push(proxy);
      watch(proxy);
      await proxy.started;
      app.attach({
        httpProxy: proxy.listening['http-proxy']!,
        outbound: Object.fromEntries(outbound.map((name) => [name, proxy.listening[`outbound:${name}`]!])),
      });
      return { service, version, app, proxy };
    }));
    const httpProxyOf = (service: string) => sidecars.find((s) => s.service === service)!.proxy.listening['http-proxy']!;

    // 4. Wait until the callers' sidecars see every instance they call, then for one full request.
    const needs: Record<string, Record<string, number>> = {
      loadgen: { web: 1 }, web: { catalog: 2, checkout: 1 }, catalog: { inventory: 1 }, checkout: { payments: 1 }, rogue: { payments: 1 },
    };
    await Promise.all(sidecars.filter((s) => needs[s.service]).map((s) => until(`${s.service}'s sidecar to see its upstreams`, deadline, async () => {
      const clusters = await proxyConfig(s.proxy.listening.admin!);
      return Object.entries(needs[s.service]!).every(([svc, n]) => (clusters[svc]?.endpoints.length ?? 0) >= n);
    })));
    await until('a request through the whole shop', deadline, async () => {
      const before = traffic!.total.ok;
      await traffic!.once();
      return traffic!.total.ok > before;
    });
    traffic!.takeWindow();
    // The policy is in force at payments' sidecar: the rogue's call is refused there, not by the app.
    await until('payments\' sidecar to refuse the rogue caller', deadline, async () => (await rogue!.attempt()) === 'PERMISSION_DENIED');
    rogue!.takeWindow();

    // 5. Running (unless a signal came during start-up: then shutdown is already under way).
    if (stopping) throw new Error('stopped during start-up');
    traffic!.start();
    const httpProxy = httpProxyOf('loadgen');
    announceListening('http-proxy:loadgen', httpProxy);
    announceListening('http-proxy:web', httpProxyOf('web'));
    rogue!.startAttempts(ROGUE_EVERY_MS);
    // Since this process was launched (node's own start-up included): the "starts within 30 s" budget.
    const startupMs = Math.round(process.uptime() * 1000);
    if (startupMs > STARTUP_BUDGET_MS) warn(`start-up took ${(startupMs / 1000).toFixed(1)}s, over the ${STARTUP_BUDGET_MS / 1000}s budget: is the machine busy?`);
    say(banner({ api, httpProxy, rate: opts.rate, startupMs, ...(opts.durationMs !== undefined ? { durationMs: opts.durationMs } : {}) }));
    // web: web's own sidecar HTTP proxy, as this event carried before loadgen existed.
    announce('ready', { api: `http://${api}/`, dashboard: `http://${api}/`, httpProxy, web: httpProxyOf('web'), startupMs });
    if (!opts.quiet) {
      let last = Date.now();
      timers.push(setInterval(() => {
        const now = Date.now();
        say(formatWindow(traffic!.takeWindow(), traffic!.total, Math.round((now - last) / 1000)) + formatRogue(rogue!.takeWindow()));
        last = now;
      }, opts.summaryEveryMs));
    }
    if (opts.durationMs !== undefined) {
      const t = setTimeout(() => { void shutdown(0, 'duration elapsed'); }, opts.durationMs);
      timers.push(t);
    }
  } catch (err) {
    if (!stopping) {
      warn(`startup failed: ${(err as Error).message}`);
      void shutdown(1, 'startup failed');
    }
  }
  const code = await done;
  for (const sig of SIGNALS) process.off(sig, onSignal);
  return code;
}
