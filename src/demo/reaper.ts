/**
 * The demo's reaper: a small process that makes sure the demo's children die with it, even when the demo
 * itself is killed with SIGKILL (which runs no handler). The demo starts it first and writes `+PID` for
 * each child it spawns (and `-PID` once that child has exited) on the reaper's stdin. When stdin ends —
 * the demo closed it after a clean stop, or the demo died and the kernel closed the pipe — the reaper
 * sends SIGTERM to every child still alive, SIGKILL to those left after a grace period, removes the
 * demo's temp dir (argv[2], only a `trellis-demo-*` dir directly in the OS temp dir), and exits.
 * It ignores terminal signals (SIGINT, SIGHUP) so that it outlives the demo for exactly this job.
 *
 *   node dist/src/demo/reaper.js WORK_DIR      (started by src/demo/children.ts startReaper)
 */

import { realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const GRACE_MS = 10_000;
const POLL_MS = 100;
const MAX_LINE = 64;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try { process.kill(pid, sig); } catch { /* already gone */ }
}

/** Parses the reaper's stdin protocol: "+PID" tracks a child, "-PID" forgets it; anything else is ignored. */
export function applyLine(pids: Set<number>, line: string): void {
  const m = /^([+-])(\d{1,10})$/.exec(line.trim());
  if (!m) return;
  const pid = Number(m[2]);
  if (!Number.isSafeInteger(pid) || pid <= 1) return;
  if (m[1] === '+') pids.add(pid);
  else pids.delete(pid);
}

/** Only the demo's own temp dir may be removed: a `trellis-demo-*` directory directly in the OS temp dir. */
export function isDemoWorkDir(dir: string | undefined): dir is string {
  if (!dir) return false;
  const abs = resolve(dir);
  return dirname(abs) === resolve(tmpdir()) && /^trellis-demo-[A-Za-z0-9]+$/.test(basename(abs));
}

async function reap(pids: Set<number>, workDir: string | undefined): Promise<void> {
  let left = [...pids].filter(alive);
  for (const pid of left) signal(pid, 'SIGTERM');
  const deadline = Date.now() + GRACE_MS;
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    left = left.filter(alive);
  }
  for (const pid of left) signal(pid, 'SIGKILL');
  if (isDemoWorkDir(workDir)) {
    try { rmSync(workDir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
}

function main(): void {
  const pids = new Set<number>();
  for (const sig of ['SIGINT', 'SIGHUP'] as const) process.on(sig, () => undefined);
  let buf = '';
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    void reap(pids, process.argv[2]).finally(() => process.exit(0));
  };
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) !== -1) {
      applyLine(pids, buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    if (buf.length > MAX_LINE) buf = ''; // not our protocol: drop it rather than grow
  });
  process.stdin.on('end', finish);
  process.stdin.on('error', finish);
  process.stdin.on('close', finish);
}

function runAsScript(): boolean {
  try {
    return process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

// Run only as a script, not when imported (tests import applyLine).
if (runAsScript()) main();
