/**
 * Child processes of `trellis demo`: the real `node bin/trellis.js control-plane|proxy ...` binaries,
 * read through the JSON lines they print on stdout ({"event":"listening",...}, {"event":"ready"}).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../shared/repo-root.js';
import { readAnnouncements } from '../shared/log.js';
export { repoRoot };

export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** name -> HOST:PORT from the "listening" lines. */
  listening: Record<string, string>;
  /** Resolves once every named listener is announced and a {"event":"ready"} line was printed (when `ready`). */
  started: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running(): boolean;
  /** The tail of the child's stderr, for error messages. */
  stderrTail(): string;
  /** Sends SIGTERM and resolves at exit; SIGKILL after `killAfterMs`. */
  stop(killAfterMs?: number): Promise<void>;
}

const STDERR_KEEP = 8192;

export function spawnTrellis(name: string, args: string[], opts: {
  expect: string[]; ready?: boolean; timeoutMs: number; env?: NodeJS.ProcessEnv;
}): Child {
  const bin = join(repoRoot(), 'bin', 'trellis.js');
  const env: NodeJS.ProcessEnv = { ...process.env, TRELLIS_LOG_LEVEL: process.env.TRELLIS_LOG_LEVEL ?? 'warn', ...opts.env };
  delete env.NODE_TEST_CONTEXT;
  // Own process group: a terminal Ctrl-C reaches the demo only, which then stops children in order.
  const proc = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env, detached: true });
  if (proc.pid === undefined) throw new Error(`cannot start trellis ${args[0]}`);
  const listening: Record<string, string> = {};
  let stderr = '';
  let ready = false;
  let onProgress: (() => void) | undefined;

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  readAnnouncements(proc.stdout!, {
    onEvent: (ev) => {
      if (ev.event === 'listening' && typeof ev.name === 'string' && typeof ev.address === 'string') listening[ev.name] = ev.address;
      if (ev.event === 'ready') ready = true;
      onProgress?.();
    },
  });
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEEP);
  });

  const started = new Promise<void>((resolve, reject) => {
    const done = () => opts.expect.every((n) => n in listening) && (!opts.ready || ready);
    const timer = setTimeout(() => {
      onProgress = undefined;
      reject(new Error(`${name} did not start within ${opts.timeoutMs}ms\n${stderr}`));
    }, opts.timeoutMs);
    onProgress = () => {
      if (!done()) return;
      onProgress = undefined;
      clearTimeout(timer);
      resolve();
    };
    void exited.then(({ code, signal }) => {
      if (!onProgress) return;
      onProgress = undefined;
      clearTimeout(timer);
      reject(new Error(`${name} exited during startup (code ${code}, signal ${signal})\n${stderr.trim()}`));
    });
  });
  started.catch(() => undefined); // observed by the caller; never an unhandled rejection

  const running = () => proc.exitCode === null && proc.signalCode === null;
  let stopping: Promise<void> | undefined;
  return {
    name,
    proc,
    pid: proc.pid,
    listening,
    started,
    exited,
    running,
    stderrTail: () => stderr,
    stop(killAfterMs = 10_000) {
      stopping ??= (async () => {
        if (!running()) return;
        proc.kill('SIGTERM');
        const killer = setTimeout(() => { if (running()) proc.kill('SIGKILL'); }, killAfterMs);
        await exited;
        clearTimeout(killer);
      })();
      return stopping;
    },
  };
}

export interface Reaper {
  pid: number;
  /** The reaper stops `pid` if this process dies before forgetting it. */
  track(pid: number): void;
  forget(pid: number): void;
  /** After a clean stop: ends the reaper's stdin (it finds nothing left to stop) and waits for its exit. */
  close(): Promise<void>;
}

/**
 * Starts the reaper (reaper.ts): it stops the tracked children, and removes `workDir` (the demo's own
 * temp dir), if this process dies without doing so, SIGKILL included. Its own process group, so a
 * terminal Ctrl-C reaches the demo only.
 */
export function startReaper(workDir: string): Reaper {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'reaper.js');
  const proc = spawn(process.execPath, [script, workDir], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  if (proc.pid === undefined) throw new Error('cannot start the demo reaper');
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.stdin!.on('error', () => undefined); // the reaper gone early: nothing to do
  const send = (line: string) => { if (proc.stdin!.writable) proc.stdin!.write(`${line}\n`); };
  return {
    pid: proc.pid,
    track: (pid) => send(`+${pid}`),
    forget: (pid) => send(`-${pid}`),
    close: async () => {
      proc.stdin!.end();
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
