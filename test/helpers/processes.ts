/**
 * Real processes for integration tests: `node bin/trellis.js ...` with port 0, waiting for the
 * {"event":"listening"} lines the processes print, and a cleanup that leaves no process behind.
 *
 *   after(stopAll)  // in every suite that starts processes
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../src/shared/repo-root.js';
import { readAnnouncements } from '../../src/shared/log.js';

/** The repository root (compiled files run from dist/test/...). */
export const REPO_ROOT: string = repoRoot();
export const TRELLIS_BIN = join(REPO_ROOT, 'bin', 'trellis.js');

export interface StartProcessOptions {
  /** Names of the "listening" announcements to wait for (e.g. ['api', 'xds']). Default: none. */
  expect?: string[];
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** How long to wait for the announcements (default 20s). */
  timeoutMs?: number;
}

export interface StartedProcess {
  proc: ChildProcess;
  /** name -> HOST:PORT from {"event":"listening","name","address"} lines. */
  listening: Record<string, string>;
  stdoutLines: string[];
  stderr(): string;
  /** Resolves with the first stdout line (already printed or future) matching `pred`. */
  waitForLine(pred: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Sends `signal` and resolves with the exit code (null when killed by a signal). SIGKILL after 10s. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<StartedProcess>();

function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TRELLIS_LOG_LEVEL: process.env.TRELLIS_LOG_LEVEL ?? 'warn' };
  delete env.NODE_TEST_CONTEXT; // a child must not think it runs under the test runner
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Spawns `node bin/trellis.js ...args` and resolves once every expected listener is announced. */
export function startProcess(args: string[], opts: StartProcessOptions = {}): Promise<StartedProcess> {
  const expect = new Set(opts.expect ?? []);
  const proc = spawn(process.execPath, [TRELLIS_BIN, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    env: childEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const listening: Record<string, string> = {};
  const stdoutLines: string[] = [];
  let stderrText = '';
  const lineWaiters = new Set<{ pred: (l: string) => boolean; resolve: (l: string) => void }>();

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });

  readAnnouncements(proc.stdout!, {
    onEvent: (ev) => { if (ev.event === 'listening' && typeof ev.name === 'string' && typeof ev.address === 'string') listening[ev.name] = ev.address; },
    onLine: (line) => {
      stdoutLines.push(line);
      for (const w of [...lineWaiters]) {
        if (w.pred(line)) { lineWaiters.delete(w); w.resolve(line); }
      }
    },
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (chunk: string) => { stderrText += chunk; });

  let stopping: Promise<number | null> | undefined;
  const started: StartedProcess = {
    proc,
    listening,
    stdoutLines,
    stderr: () => stderrText,
    exited,
    waitForLine(pred, timeoutMs = 10_000) {
      const existing = stdoutLines.find(pred);
      if (existing !== undefined) return Promise.resolve(existing);
      return new Promise((resolve, reject) => {
        const waiter = {
          pred,
          resolve: (l: string) => { clearTimeout(timer); resolve(l); },
        };
        const timer = setTimeout(() => {
          lineWaiters.delete(waiter);
          reject(new Error(`timed out after ${timeoutMs}ms waiting for a line from trellis ${args.join(' ')}\nstdout:\n${stdoutLines.join('\n')}\nstderr:\n${stderrText}`));
        }, timeoutMs);
        lineWaiters.add(waiter);
        void exited.then(() => {
          if (!lineWaiters.has(waiter)) return;
          lineWaiters.delete(waiter);
          clearTimeout(timer);
          reject(new Error(`trellis ${args.join(' ')} exited before printing the expected line\nstderr:\n${stderrText}`));
        });
      });
    },
    stop(signal = 'SIGTERM') {
      stopping ??= (async () => {
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill(signal);
          const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
          const { code } = await exited;
          clearTimeout(killer);
          live.delete(started);
          return code;
        }
        live.delete(started);
        return proc.exitCode;
      })();
      return stopping;
    },
  };
  live.add(started);
  void exited.then(() => live.delete(started));

  return new Promise((resolve, reject) => {
    const allThere = () => [...expect].every((n) => n in listening);
    if (allThere()) { resolve(started); return; }
    const timeoutMs = opts.timeoutMs ?? 20_000;
    const timer = setTimeout(() => {
      cleanup();
      void started.stop('SIGKILL');
      reject(new Error(`trellis ${args.join(' ')} did not announce ${[...expect].filter((n) => !(n in listening)).join(', ')} within ${timeoutMs}ms\nstderr:\n${stderrText}`));
    }, timeoutMs);
    const onData = () => {
      if (allThere()) { cleanup(); resolve(started); }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      cleanup();
      // Let the remaining output arrive before reporting it.
      setImmediate(() => reject(new Error(`trellis ${args.join(' ')} exited early (code ${code}, signal ${signal})\nstderr:\n${stderrText}\nstdout:\n${stdoutLines.join('\n')}`)));
    };
    const cleanup = () => {
      clearTimeout(timer);
      proc.stdout!.off('data', onData);
      proc.off('exit', onExit);
    };
    // Runs after the line parser above (listeners are called in order).
    proc.stdout!.on('data', onData);
    proc.once('exit', onExit);
    proc.once('error', (err) => { cleanup(); reject(err); });
  });
}

export interface StartedControlPlane extends StartedProcess {
  /** API address HOST:PORT. */
  api: string;
  /** xDS address HOST:PORT. */
  xds: string;
  dataDir: string;
}

/** A control plane on port 0 (API and xDS) with a fresh data dir, unless extraArgs sets them. */
export async function startControlPlane(extraArgs: string[] = [], opts: StartProcessOptions = {}): Promise<StartedControlPlane> {
  const has = (flag: string) => extraArgs.includes(flag);
  const args = ['control-plane', ...extraArgs];
  let dataDir: string;
  if (has('--data-dir')) {
    dataDir = extraArgs[extraArgs.indexOf('--data-dir') + 1]!;
  } else {
    dataDir = await mkdtemp(join(tmpdir(), 'trellis-cp-'));
    args.push('--data-dir', dataDir);
  }
  if (!has('--api')) args.push('--api', '127.0.0.1:0');
  if (!has('--xds')) args.push('--xds', '127.0.0.1:0');
  const started = await startProcess(args, { ...opts, expect: ['api', 'xds', ...(opts.expect ?? [])] });
  return Object.assign(started, { api: started.listening.api!, xds: started.listening.xds!, dataDir });
}

export interface CliResult { code: number | null; stdout: string; stderr: string }

/**
 * Runs one CLI command to completion. With `api`, adds `--api http://API` unless args already has --api.
 */
export function runCli(args: string[], opts: { api?: string; stdin?: string; env?: Record<string, string | undefined>; timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  const fullArgs = [...args];
  if (opts.api && !args.includes('--api')) fullArgs.push('--api', opts.api.includes('://') ? opts.api : `http://${opts.api}`);
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [TRELLIS_BIN, ...fullArgs], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: childEnv(opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    proc.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`trellis ${fullArgs.join(' ')} did not finish within ${opts.timeoutMs ?? 30_000}ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    proc.once('error', (err) => { clearTimeout(timer); reject(err); });
    proc.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    proc.stdin.on('error', () => undefined);
    proc.stdin.end(opts.stdin ?? '');
  });
}

/** Stops every process started by startProcess that is still running (SIGTERM, SIGKILL after 10s). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop('SIGTERM')));
}

// Safety net: never leave children behind, even when a test run is interrupted.
process.once('exit', () => {
  for (const p of live) {
    try { p.proc.kill('SIGKILL'); } catch { /* already gone */ }
  }
});
