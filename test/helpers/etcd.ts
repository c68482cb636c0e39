/**
 * A real single-member etcd (Debian's etcd-server, installed by scripts/ensure-deps.mjs) on loopback for
 * tests, with a temporary data dir. etcd cannot bind port 0, so free ports are found by listening on port 0
 * and closing; a start that loses that race (address in use) is retried on new ports.
 *
 *   const etcd = await startEtcd(); after(() => etcd.stop());
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from '../../src/shared/poll.js';

export const ETCD_BIN = process.env.TRELLIS_ETCD_BIN ?? 'etcd';

export interface RunningEtcd {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  dataDir: string;
  proc: ChildProcess;
  log(): string;
  /** Kills etcd (SIGKILL by default) and keeps its data dir, so `restart` brings the same cluster back. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts etcd again on the same ports and data dir. */
  restart(): Promise<void>;
  /** Kills it and removes the data dir. */
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

const live = new Set<ChildProcess>();
process.once('exit', () => { for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });

export async function startEtcd(): Promise<RunningEtcd> {
  const dataDir = await mkdtemp(join(tmpdir(), 'trellis-etcd-'));
  for (let attempt = 0; ; attempt++) {
    const clientPort = await freePort();
    const peerPort = await freePort();
    try {
      return await launch(dataDir, clientPort, peerPort);
    } catch (err) {
      if (attempt >= 3 || !/address already in use/.test((err as Error).message)) {
        await rm(dataDir, { recursive: true, force: true });
        throw err;
      }
    }
  }
}

async function launch(dataDir: string, clientPort: number, peerPort: number): Promise<RunningEtcd> {
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let logText = '';
  let proc!: ChildProcess;
  let exited!: Promise<void>;
  const spawnIt = async () => {
    proc = spawn(ETCD_BIN, [
      '--name', 'test', '--data-dir', join(dataDir, 'member-data'),
      '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `test=${peer}`, '--initial-cluster-state', 'new',
      '--log-level', 'warn', '--logger', 'zap',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(proc);
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => { logText = (logText + c).slice(-20_000); });
    exited = new Promise((resolve) => proc.once('exit', () => { live.delete(proc); resolve(); }));
    let dead = false;
    const died = exited.then(() => { dead = true; throw new Error(`etcd exited at start: ${logText}`); });
    died.catch(() => undefined);
    await Promise.race([died, pollUntil(async () => {
      if (dead) return true;
      try {
        const res = await fetch(`${endpoint}/health`);
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      } catch {
        return false;
      }
    }, { timeoutMs: 20_000, intervalMs: 100, what: `etcd on ${endpoint} to be healthy` })]);
    if (dead) throw new Error(`etcd exited at start: ${logText}`);
  };
  try {
    await spawnIt();
  } catch (err) {
    proc.kill('SIGKILL');
    await exited;
    throw err;
  }
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exited;
  };
  return {
    endpoint,
    dataDir,
    get proc() { return proc; },
    log: () => logText,
    kill,
    restart: spawnIt,
    stop: async () => {
      await kill();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
