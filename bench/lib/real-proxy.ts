/**
 * A real `trellis proxy` process for the control-plane benchmark, with its applied config versions
 * read from its own log ("config applied", info level, on stderr) as they happen.
 */
import { join } from 'node:path';
import { readAnnouncements } from '../../src/shared/log.js';
import { REPO_ROOT } from './targets.js';
import { AppliedVersion } from './version-waiters.js';
import { sleep, spawnManaged, type Managed } from './util.js';

export interface RealProxy {
  m: Managed;
  listening: Record<string, string>;
  /** Highest applied version so far (0 before the first). */
  readonly version: number;
  /** Called with (version, performance.now()) for every applied version. */
  onApplied?: (version: number, at: number) => void;
  nacks: number;
  waitVersion(v: number, timeoutMs: number): Promise<void>;
}

export async function startRealProxy(name: string, args: string[], expect: string[], nodeArgs: string[] = []): Promise<RealProxy> {
  const m = spawnManaged(name, process.execPath, [...nodeArgs, join(REPO_ROOT, 'bin', 'trellis.js'), 'proxy', ...args], {
    cwd: REPO_ROOT, env: { ...process.env, TRELLIS_LOG_LEVEL: 'info' },
  });
  const listening: Record<string, string> = {};
  let ready = false;
  const applied = new AppliedVersion(name);
  const proxy: RealProxy = {
    m, listening, nacks: 0,
    get version() { return applied.value; },
    waitVersion: (v, timeoutMs) => applied.wait(v, timeoutMs),
  };
  readAnnouncements(m.proc.stdout!, {
    onEvent: (ev) => {
      if (ev.event === 'listening' && typeof ev.name === 'string' && typeof ev.address === 'string') listening[ev.name] = ev.address;
      if (ev.event === 'ready') ready = true;
    },
  });
  readAnnouncements(m.proc.stderr!, {
    onLine: (line) => {
      if (!line.includes('"config ')) return;
      let ev: { msg?: string; version?: string };
      try { ev = JSON.parse(line) as typeof ev; } catch { return; }
      if (ev.msg === 'config refused (NACK); keeping the last good config') { proxy.nacks++; return; }
      if (ev.msg !== 'config applied') return;
      const at = performance.now();
      applied.set(Math.max(applied.value, Number(ev.version)));
      proxy.onApplied?.(Number(ev.version), at);
    },
  });
  const deadline = Date.now() + 60_000;
  while (!(expect.every((e) => e in listening) && ready)) {
    if (m.proc.exitCode !== null) throw new Error(`${name} exited early:\n${m.output()}`);
    if (Date.now() > deadline) { await m.stop(); throw new Error(`${name} not ready within 60s:\n${m.output().slice(-4000)}`); }
    await sleep(20);
  }
  return proxy;
}
