/**
 * Small process and /proc helpers for the benchmark: free loopback ports, managed child processes
 * (always killed on exit), CPU time and RSS of a pid, percentiles.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (for programs that cannot bind port 0 and announce it: nginx, haproxy). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once 127.0.0.1:port accepts a TCP connection, or rejects after timeoutMs. */
export async function waitForPort(port: number, timeoutMs = 10_000, proc?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`process exited (code ${proc.exitCode}) before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs}ms`);
    await sleep(50);
  }
}

export interface Managed {
  name: string;
  proc: ChildProcess;
  pid: number;
  output(): string;
  stop(): Promise<void>;
}

const live = new Set<Managed>();

/** Spawns a long-running child, remembers it, and kills it (SIGTERM, then SIGKILL after 5s) on stop/exit. */
export function spawnManaged(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Managed {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  const keep = (c: Buffer) => { out += c.toString('utf8'); if (out.length > 200_000) out = out.slice(-100_000); };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const m: Managed = {
    name,
    proc,
    pid: proc.pid ?? -1,
    output: () => out,
    async stop() {
      live.delete(m);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
  live.add(m);
  void exited.then(() => live.delete(m));
  return m;
}

export async function stopAllManaged(): Promise<void> {
  await Promise.all([...live].map((m) => m.stop()));
}

process.once('exit', () => {
  for (const m of live) { try { m.proc.kill('SIGKILL'); } catch { /* gone */ } }
});

const CLK_TCK = 100; // USER_HZ on Linux

/** utime+stime of a process in microseconds (/proc/<pid>/stat fields 14 and 15). */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14 → index 11, stime field 15 → index 12
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000_000) / CLK_TCK;
}

/** VmRSS of a process in MiB. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Percentile (0..100) of an ascending-sorted array, nearest-rank. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const round = (x: number, digits = 2): number => {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};
