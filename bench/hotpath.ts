/**
 * A small harness for working on the proxy's per-request cost, faster than `npm run bench`: starts the
 * nginx backend, a control plane and the Trellis proxy pair (client → outbound → mTLS/h2 → inbound →
 * backend), drives it with h2load, and prints CPU µs per request of each proxy (from /proc), throughput,
 * and the RSS of each proxy. Optional: V8 flags for both proxies (e.g. --cpu-prof, --trace-gc).
 *
 *   node dist/bench/hotpath.js [--seconds 6] [--proto h1|h2] [--size 1k|16k] [--rounds 1] [--conns N]
 *                              [--warm SECONDS] [--rate N] [--tracing]
 *                              [--node-arg=--cpu-prof --node-arg=--cpu-prof-dir=/tmp/prof] [--node-arg=--trace-gc-nvp]
 *
 * --warm: h2load traffic before measuring (JIT warm-up). --rate: constant-rate open loop (HTTP/1.1) instead
 * of saturation, with latency percentiles. --tracing: MeshConfig.tracing at 100% to a local OTLP sink.
 * --node-arg=--trace-gc-nvp: also prints V8 heap bytes allocated per request (summed `allocated=` per GC).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTools } from './lib/deps.js';
import { openLoop, saturate } from './lib/load.js';
import { startBackend, startTrellisMesh, type BodySize } from './lib/targets.js';
import { startTraceSink } from './lib/trace-sink.js';
import { readFileSync } from 'node:fs';
import { cpuMicros, round, rssMiB, sleep, stopAllManaged } from './lib/util.js';

/** [utime, stime] of a process in µs. */
function cpuSplit(pid: number): [number, number] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(f[11]) * 10_000, Number(f[12]) * 10_000];
}

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : dflt;
};
const seconds = Number(opt('seconds', '6'));
const proto = opt('proto', 'h1') as 'h1' | 'h2';
const size = opt('size', '1k') as BodySize;
const rounds = Number(opt('rounds', '1'));
const tracing = argv.includes('--tracing');
const rate = Number(opt('rate', '0')); // > 0: constant-rate open loop (HTTP/1.1) instead of h2load at saturation
const warm = Number(opt('warm', '0')); // seconds of h2load before measuring (JIT warm-up)
const nodeArgs = argv.filter((a) => a.startsWith('--node-arg=')).map((a) => a.slice('--node-arg='.length));

async function main(): Promise<void> {
  const tools = ensureTools((s) => process.stderr.write(`${s}\n`));
  const dir = mkdtempSync(join(tmpdir(), 'trellis-hotpath-'));
  try {
    const backend = await startBackend(tools.nginx!, dir);
    const sink = tracing ? await startTraceSink() : undefined;
    const mesh = await startTrellisMesh(dir, backend.h1Port, nodeArgs, sink ? { tracing: { otlpEndpoint: sink.url, sampling: 100 } } : undefined);
    await sleep(500);
    const idle0 = mesh.proxies.map((p) => cpuMicros(p.pid));
    await sleep(3000);
    process.stdout.write(`idle CPU over 3 s: ${mesh.proxies.map((p, i) => `${p.role}=${round((cpuMicros(p.pid) - idle0[i]!) / 30_000, 1)}%`).join(' ')}\n`);
    if (warm > 0) await saturate(tools.h2load!, { proto, url: `${mesh.h1}/${size}`, seconds: warm, warmupSeconds: 0, connections: 32, streams: 16 });
    for (let r = 0; r < rounds; r++) {
      const before = mesh.proxies.map((p) => cpuMicros(p.pid));
      const splitBefore = mesh.proxies.map((p) => cpuSplit(p.pid));
      const allocBefore = mesh.proxies.map((p) => p.allocatedBytes?.() ?? 0);
      const maxRssOf = mesh.proxies.map(() => 0);
      const t = setInterval(() => { mesh.proxies.forEach((p, i) => { maxRssOf[i] = Math.max(maxRssOf[i]!, rssMiB(p.pid)); }); }, 250);
      let res: { rps: number; failed: number; non2xx: number };
      let reqs: number;
      if (rate > 0) {
        const l = await openLoop({ url: `${mesh.h1}/${size}`, rate, seconds, warmupSeconds: 2 });
        res = { rps: l.achievedRate, failed: l.errors + l.dropped, non2xx: 0 };
        reqs = l.completed;
        process.stdout.write(`  latency p50 ${l.p50} p99 ${l.p99} p99.9 ${l.p999} max ${l.max} ms\n`);
      } else {
        const sres = await saturate(tools.h2load!, { proto, url: `${mesh.h1}/${size}`, seconds, warmupSeconds: 1, connections: Number(opt('conns', proto === 'h1' ? '32' : '2')), streams: 16 });
        res = sres;
        reqs = sres.succeeded * (seconds + 1) / seconds;
      }
      clearInterval(t);
      const us = mesh.proxies.map((p, i) => round((cpuMicros(p.pid) - before[i]!) / Math.max(1, reqs), 1));
      const split = mesh.proxies.map((p, i) => { const [u, s] = cpuSplit(p.pid); return `${round((u - splitBefore[i]![0]) / reqs, 0)}u+${round((s - splitBefore[i]![1]) / reqs, 0)}s`; }).join(' ');
      const alloc = nodeArgs.includes('--trace-gc-nvp')
        ? ` heap alloc ${mesh.proxies.map((p, i) => `${p.role}=${round((p.allocatedBytes!() - allocBefore[i]!) / reqs / 1024, 2)}`).join(' ')} KiB/req`
        : '';
      const spans = sink ? ` spans=${sink.spans}` : '';
      process.stdout.write(`${proto} ${size}: ${res.rps} req/s failed=${res.failed} non2xx=${res.non2xx} cpu out=${us[0]} in=${us[1]} sum=${round(us[0]! + us[1]!, 1)} µs/req (${split}) maxRSS out=${round(maxRssOf[0]!, 1)} in=${round(maxRssOf[1]!, 1)} MiB${alloc}${spans}\n`);
    }
    await mesh.stop();
    await sink?.close();
    await backend.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(async () => { await stopAllManaged(); process.exit(0); }, async (err) => {
  process.stderr.write(`FAILED: ${(err as Error).stack ?? err}\n`);
  await stopAllManaged();
  process.exit(1);
});
