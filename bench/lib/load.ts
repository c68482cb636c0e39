/**
 * Load generators.
 *   saturate()  h2load (C, one thread) at a fixed concurrency for a fixed time: throughput.
 *   openLoop()  a constant-rate open-loop HTTP/1.1 keep-alive generator in Node. Request i is due at
 *               t0 + i/rate; its latency is measured from that INTENDED send time, so a stall (in the
 *               path or in the generator) shows up in the percentiles instead of silently lowering
 *               the rate (coordinated-omission correction, as in wrk2).
 *   timeOne()   one GET, on a given agent or a fresh connection.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { percentile, round } from './util.js';

export interface SaturateResult {
  proto: 'h1' | 'h2';
  concurrency: number;
  seconds: number;
  rps: number;
  succeeded: number;
  failed: number;
  non2xx: number;
  raw?: string;
}

export interface SaturateOptions { proto: 'h1' | 'h2'; url: string; seconds: number; warmupSeconds: number; connections: number; streams: number }

export function saturate(h2load: string, o: SaturateOptions): Promise<SaturateResult> {
  const args = ['-t', '1', '-c', String(o.connections), '-m', String(o.proto === 'h1' ? 1 : o.streams),
    '-D', String(o.seconds), '--warm-up-time', String(o.warmupSeconds), ...(o.proto === 'h1' ? ['--h1'] : []), o.url];
  return new Promise((resolve, reject) => {
    execFile(h2load, args, { timeout: (o.seconds + o.warmupSeconds + 30) * 1000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) { reject(new Error(`h2load ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`)); return; }
      const fin = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(stdout);
      const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout);
      const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
      if (!fin || !req) { reject(new Error(`cannot parse h2load output:\n${stdout}\n${stderr}`)); return; }
      const secs = Number(fin[1]) / (fin[2] === 'ms' ? 1000 : 1);
      const succeeded = Number(req[4]);
      const non2xx = codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0;
      resolve({
        proto: o.proto, concurrency: o.connections * (o.proto === 'h1' ? 1 : o.streams), seconds: round(secs, 2),
        rps: round(Number(fin[3]), 0), succeeded, failed: Number(req[5]) + Number(req[6]) + Number(req[7]), non2xx,
        ...(succeeded === 0 || non2xx > 0 ? { raw: stdout } : {}),
      });
    });
  });
}

export interface LatencyResult {
  targetRate: number;
  achievedRate: number;
  seconds: number;
  sent: number;
  completed: number;
  errors: number;
  /** Requests never sent because too many were outstanding (the path could not keep up). */
  dropped: number;
  p50: number; p90: number; p99: number; p999: number; max: number; // milliseconds
}

export interface OpenLoopOptions { url: string; rate: number; seconds: number; warmupSeconds: number; maxSockets?: number; timeoutMs?: number; maxOutstanding?: number }

/** Constant-rate open-loop generator (HTTP/1.1 keep-alive), latency from each request's intended send time. */
export function openLoop(o: OpenLoopOptions): Promise<LatencyResult> {
  const u = new URL(o.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.maxSockets ?? 64, scheduling: 'lifo' });
  const warm = Math.round(o.rate * o.warmupSeconds);
  const measured = Math.round(o.rate * o.seconds);
  const total = warm + measured;
  const interval = 1000 / o.rate;
  const timeoutMs = o.timeoutMs ?? 5_000;
  const maxOutstanding = o.maxOutstanding ?? Math.max(1000, o.rate * 2);
  const lat = new Float64Array(measured);
  let recorded = 0, errors = 0, dropped = 0, outstanding = 0, sent = 0, finished = 0;
  let measureStart = 0, lastEnd = 0;

  return new Promise((resolve) => {
    const t0 = performance.now() + 20;
    let i = 0;
    let finishedScheduling = false;
    const maybeDone = () => {
      if (!finishedScheduling || outstanding > 0) return;
      clearTimeout(hardStop);
      agent.destroy();
      const sorted = lat.subarray(0, recorded).sort();
      const elapsed = (Math.max(lastEnd, t0 + total * interval) - measureStart) / 1000;
      resolve({
        targetRate: o.rate, achievedRate: round(recorded / Math.max(elapsed, o.seconds), 0), seconds: round(elapsed, 2),
        sent, completed: recorded, errors, dropped,
        p50: round(percentile(sorted, 50), 3), p90: round(percentile(sorted, 90), 3), p99: round(percentile(sorted, 99), 3),
        p999: round(percentile(sorted, 99.9), 3), max: round(sorted.length ? sorted[sorted.length - 1]! : NaN, 3),
      });
    };
    const fire = (idx: number, intended: number) => {
      outstanding++; sent++;
      let settled = false;
      const finish = (ok: boolean) => {
        if (settled) return;
        settled = true;
        outstanding--; finished++;
        const end = performance.now();
        if (idx >= warm) {
          if (ok) lat[recorded++] = end - intended; else errors++;
          lastEnd = end;
        }
        maybeDone();
      };
      const req = http.get({ agent, host: u.hostname, port: u.port, path: u.pathname + u.search }, (res) => {
        const ok = res.statusCode === 200;
        res.on('data', () => undefined);
        res.once('end', () => finish(ok));
        res.once('error', () => finish(false));
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
      req.once('error', () => finish(false));
    };
    const tick = () => {
      const now = performance.now();
      while (i < total && t0 + i * interval <= now) {
        const intended = t0 + i * interval;
        if (i === warm) measureStart = intended;
        if (outstanding >= maxOutstanding) { if (i >= warm) dropped++; }
        else fire(i, intended);
        i++;
      }
      if (i < total) setTimeout(tick, Math.max(0, Math.min(1, t0 + i * interval - performance.now())));
      else { finishedScheduling = true; maybeDone(); }
    };
    // Bounded: whatever happens, stop waiting timeoutMs after the last request was due.
    const hardStop = setTimeout(() => { agent.destroy(); finishedScheduling = true; outstanding = 0; maybeDone(); }, total * interval + timeoutMs + 2_000);
    setTimeout(tick, 20);
  });
}

/** Time (ms) of one GET; without agent, on a fresh TCP connection (Connection: close). */
export function timeOne(url: string, agent?: http.Agent): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = http.get({ agent: agent ?? false, host: u.hostname, port: u.port, path: u.pathname, headers: agent ? {} : { connection: 'close' } }, (res) => {
      res.on('data', () => undefined);
      res.once('end', () => res.statusCode === 200 ? resolve(performance.now() - start) : reject(new Error(`status ${res.statusCode} from ${url}`)));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout on ${url}`)));
    req.once('error', reject);
  });
}

export const median = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50);
