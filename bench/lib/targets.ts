/**
 * What the benchmark measures, each started as real processes on 127.0.0.1:
 *   backend  nginx serving static 1 KiB / 16 KiB files (one process, so it is not the bottleneck
 *            and costs the same on every path)
 *   direct   client → backend
 *   trellis  client → outbound proxy → mTLS (HTTP/2) → inbound proxy → backend (real control plane)
 *   nginx    client → nginx → mTLS (HTTP/1.1, upstream keepalive) → nginx → backend
 *   haproxy  client → haproxy → mTLS (HTTP/2, alpn h2, http-reuse always) → haproxy → backend
 * Every proxy is one process with one thread (nginx master_process off, haproxy nbthread 1), like a
 * Node.js Trellis proxy, so CPU per request compares like with like.
 */
import { readAnnouncements } from '../../src/shared/log.js';
import { mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrellisClient } from '../../src/sdk/client.js';
import type { Pki } from './pki.js';
import { freePort, sleep, spawnManaged, waitForPort, type Managed } from './util.js';

export interface ProxyProc {
  role: string;
  pid: number;
  /** Trellis proxies started with --trace-gc-nvp: V8 heap bytes allocated so far (counted at each GC). */
  allocatedBytes?: () => number;
}

export interface Target {
  name: string;
  /** Base URL (no trailing slash) for HTTP/1.1 clients. */
  h1: string;
  /** Base URL for h2c prior-knowledge clients (h2load), or undefined when not offered. */
  h2?: string;
  proxies: ProxyProc[];
  stop(): Promise<void>;
}

export const BODY_SIZES = { '1k': 1024, '16k': 16 * 1024 } as const;
export type BodySize = keyof typeof BODY_SIZES;

export const REPO_ROOT: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'bin', 'trellis.js'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find bin/trellis.js');
    dir = parent;
  }
})();
const TRELLIS_BIN = join(REPO_ROOT, 'bin', 'trellis.js');

function nginxCommon(prefix: string): string {
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(prefix, d), { recursive: true });
  return `daemon off;
master_process off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; multi_accept on; }
`;
}
function nginxHttpCommon(prefix: string): string {
  return `  access_log off;
  client_body_temp_path ${prefix}/client_body; proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi; uwsgi_temp_path ${prefix}/uwsgi; scgi_temp_path ${prefix}/scgi;
  keepalive_requests 1000000; keepalive_timeout 120s; http2_max_requests 1000000;
  http2_max_concurrent_streams 1000;
`;
}

async function startNginx(nginx: string, name: string, dir: string, conf: string, ports: number[]): Promise<Managed> {
  const prefix = join(dir, name);
  mkdirSync(prefix, { recursive: true });
  const file = join(prefix, 'nginx.conf');
  writeFileSync(file, conf.replaceAll('@PREFIX@', prefix));
  const m = spawnManaged(name, nginx, ['-p', prefix, '-c', file, '-e', join(prefix, 'error.log')]);
  try {
    for (const p of ports) await waitForPort(p, 10_000, m.proc);
  } catch (err) {
    throw new Error(`${name} did not start: ${(err as Error).message}\n${m.output()}\n${safeRead(join(prefix, 'error.log'))}`);
  }
  return m;
}

function safeRead(f: string): string { try { return readFileSync(f, 'utf8'); } catch { return ''; } }

/** The backend: nginx serving /1k and /16k (static files of that many bytes) over HTTP/1.1 and h2c. */
export async function startBackend(nginx: string, dir: string): Promise<Target & { h1Port: number }> {
  const www = join(dir, 'www');
  mkdirSync(www, { recursive: true });
  for (const [name, size] of Object.entries(BODY_SIZES)) writeFileSync(join(www, name), Buffer.alloc(size, 'x'));
  const [h1Port, h2Port] = [await freePort(), await freePort()];
  const prefix = join(dir, 'backend');
  mkdirSync(prefix, { recursive: true });
  const conf = `${nginxCommon(prefix)}
http {
${nginxHttpCommon(prefix)}
  default_type application/octet-stream;
  sendfile on; tcp_nopush on; tcp_nodelay on; open_file_cache max=100;
  server { listen 127.0.0.1:${h1Port} backlog=4096; root ${www}; }
  server { listen 127.0.0.1:${h2Port} http2 backlog=4096; root ${www}; }
}
`;
  const m = await startNginx(nginx, 'backend', dir, conf, [h1Port, h2Port]);
  return { name: 'backend', h1: `http://127.0.0.1:${h1Port}`, h2: `http://127.0.0.1:${h2Port}`, h1Port, proxies: [{ role: 'backend', pid: m.pid }], stop: () => m.stop() };
}

export async function startNginxPair(nginx: string, dir: string, pki: Pki, backendPort: number): Promise<Target> {
  const [inPort, outH1, outH2] = [await freePort(), await freePort(), await freePort()];
  const inbound = await startNginx(nginx, 'nginx-inbound', dir, `${nginxCommon(join(dir, 'nginx-inbound'))}
http {
${nginxHttpCommon(join(dir, 'nginx-inbound'))}
  upstream app { server 127.0.0.1:${backendPort}; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${inPort} ssl backlog=4096;
    ssl_certificate ${pki.serverCrt}; ssl_certificate_key ${pki.serverKey};
    ssl_client_certificate ${pki.ca}; ssl_verify_client on; ssl_verify_depth 2;
    ssl_protocols TLSv1.3; ssl_session_cache shared:in:1m;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering on; }
  }
}
`, [inPort]);
  const outbound = await startNginx(nginx, 'nginx-outbound', dir, `${nginxCommon(join(dir, 'nginx-outbound'))}
http {
${nginxHttpCommon(join(dir, 'nginx-outbound'))}
  upstream peer { server 127.0.0.1:${inPort}; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${outH1} backlog=4096;
    listen 127.0.0.1:${outH2} http2 backlog=4096;
    location / {
      proxy_pass https://peer; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_certificate ${pki.clientCrt}; proxy_ssl_certificate_key ${pki.clientKey};
      proxy_ssl_trusted_certificate ${pki.ca}; proxy_ssl_verify on; proxy_ssl_verify_depth 2;
      proxy_ssl_name backend.mesh; proxy_ssl_server_name on; proxy_ssl_session_reuse on; proxy_ssl_protocols TLSv1.3;
    }
  }
}
`, [outH1, outH2]);
  return {
    name: 'nginx', h1: `http://127.0.0.1:${outH1}`, h2: `http://127.0.0.1:${outH2}`,
    proxies: [{ role: 'outbound', pid: outbound.pid }, { role: 'inbound', pid: inbound.pid }],
    stop: async () => { await outbound.stop(); await inbound.stop(); },
  };
}

export async function startHaproxyPair(haproxy: string, dir: string, pki: Pki, backendPort: number): Promise<Target> {
  const [inPort, outH1, outH2] = [await freePort(), await freePort(), await freePort()];
  const common = `global
  nbthread 1
  maxconn 4000
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  http-reuse always
`;
  const start = async (name: string, cfg: string, ports: number[]) => {
    const file = join(dir, `${name}.cfg`);
    writeFileSync(file, common + cfg);
    const m = spawnManaged(name, haproxy, ['-db', '-f', file]);
    try { for (const p of ports) await waitForPort(p, 10_000, m.proc); } catch (err) {
      throw new Error(`${name} did not start: ${(err as Error).message}\n${m.output()}`);
    }
    return m;
  };
  const inbound = await start('haproxy-inbound', `frontend in
  bind 127.0.0.1:${inPort} ssl crt ${pki.serverPem} ca-file ${pki.ca} verify required alpn h2,http/1.1
  default_backend app
backend app
  server be 127.0.0.1:${backendPort}
`, [inPort]);
  const outbound = await start('haproxy-outbound', `frontend out
  bind 127.0.0.1:${outH1}
  bind 127.0.0.1:${outH2} proto h2
  # The peer hop is HTTP/2, which has no reason phrase; h2load's HTTP/1.1 parser rejects "HTTP/1.1 200 ".
  http-response set-status 200 reason OK if { status 200 }
  default_backend peer
backend peer
  server in1 127.0.0.1:${inPort} ssl crt ${pki.clientPem} ca-file ${pki.ca} verify required verifyhost backend.mesh sni str(backend.mesh) alpn h2
`, [outH1, outH2]);
  return {
    name: 'haproxy', h1: `http://127.0.0.1:${outH1}`, h2: `http://127.0.0.1:${outH2}`,
    proxies: [{ role: 'outbound', pid: outbound.pid }, { role: 'inbound', pid: inbound.pid }],
    stop: async () => { await outbound.stop(); await inbound.stop(); },
  };
}

export interface TrellisProc { m: Managed; listening: Record<string, string>; allocated: () => number }

/** Spawns `node bin/trellis.js ...args` and waits for the named listening announcements (and "ready"). */
export async function startTrellis(name: string, args: string[], expect: string[], waitReady: boolean, env: Record<string, string>, nodeArgs: string[] = []): Promise<TrellisProc> {
  const m = spawnManaged(name, process.execPath, [...nodeArgs, TRELLIS_BIN, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, TRELLIS_LOG_LEVEL: 'warn', ...env },
  });
  const listening: Record<string, string> = {};
  let ready = false;
  // With --trace-gc-nvp, every GC line carries `allocated=<bytes since the last GC>`: summed, the bytes
  // of V8 heap allocated so far (a contention-proof measure of per-request JavaScript work).
  let allocated = 0;
  if (nodeArgs.includes('--trace-gc-nvp')) {
    let rest = '';
    m.proc.stdout!.on('data', (c: Buffer) => {
      const text = rest + c.toString('latin1');
      const cut = text.lastIndexOf('\n');
      rest = text.slice(cut + 1);
      for (const match of text.slice(0, cut + 1).matchAll(/\ballocated=(\d+)/g)) allocated += Number(match[1]);
    });
  }
  readAnnouncements(m.proc.stdout!, {
    onEvent: (ev) => {
      if (ev.event === 'listening' && ev.name && ev.address) listening[ev.name] = ev.address;
      if (ev.event === 'ready') ready = true;
    },
  });
  const deadline = Date.now() + 30_000;
  while (!(expect.every((e) => e in listening) && (!waitReady || ready))) {
    if (m.proc.exitCode !== null) throw new Error(`${name} exited early:\n${m.output()}`);
    if (Date.now() > deadline) { await m.stop(); throw new Error(`${name} not ready within 30s:\n${m.output()}`); }
    await sleep(20);
  }
  return { m, listening, allocated: () => allocated };
}

export interface TrellisMesh extends Target {
  controlPlane: { pid: number };
  /** Admin addresses (host:port) of the outbound and inbound proxies, for /metrics. */
  admins: string[];
  /** Starts one more client-side proxy (fresh: no mTLS session yet) and returns its outbound URL. */
  freshClientProxy(): Promise<{ url: string; pid: number; stop(): Promise<void> }>;
}

/**
 * nodeArgs go to both proxies' node (e.g. --cpu-prof, which NODE_OPTIONS refuses on Node 20).
 * meshConfig (e.g. `{ tracing: {...} }`) is applied as the MeshConfig before any proxy starts, so
 * both proxies get it in their first snapshot.
 */
export async function startTrellisMesh(dir: string, backendPort: number, nodeArgs: string[] = [], meshConfig?: Record<string, unknown>, name = 'trellis'): Promise<TrellisMesh> {
  const dataDir = await mkdtemp(join(tmpdir(), 'trellis-bench-cp-'));
  const cp = await startTrellis('trellis-cp', ['control-plane', '--data-dir', dataDir, '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0'], ['api', 'xds'], false, {});
  const api = new TrellisClient({ baseUrl: `http://${cp.listening.api}` });
  if (meshConfig) await api.apply([{ apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: meshConfig }]);
  const tokenFile = async (service: string) => {
    const { token } = await api.createToken(service);
    const f = join(dir, `${service}-${Math.random().toString(36).slice(2)}.token`);
    await writeFile(f, token, { mode: 0o600 });
    return f;
  };
  const inbound = await startTrellis('trellis-inbound', ['proxy', '--service', 'backend', '--app', `127.0.0.1:${backendPort}`, '--inbound', '127.0.0.1:0',
    '--token-file', await tokenFile('backend'), '--protocol', 'http', '--drain-timeout', '1s'], ['admin', 'inbound'], true, {}, nodeArgs);
  const startClient = async (name: string, nArgs: string[]) => {
    const p = await startTrellis(name, ['proxy', '--service', 'client', '--app', '127.0.0.1:9', '--inbound', '127.0.0.1:0',
      '--token-file', await tokenFile('client'), '--protocol', 'http', '--outbound', 'backend=127.0.0.1:0', '--drain-timeout', '1s'],
      ['admin', 'inbound', 'outbound:backend'], true, {}, nArgs);
    // Wait until the client proxy knows the backend's endpoint.
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const cfg = await (await fetch(`http://${p.listening.admin}/config`)).json() as { snapshot?: { clusters?: Record<string, { endpoints: unknown[] }> } };
        if ((cfg.snapshot?.clusters?.backend?.endpoints.length ?? 0) >= 1) break;
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`${name} never saw the backend endpoint`);
      await sleep(50);
    }
    return p;
  };
  const outbound = await startClient('trellis-outbound', nodeArgs);
  const url = `http://${outbound.listening['outbound:backend']}`;
  let n = 0;
  return {
    name, h1: url, h2: url,
    proxies: [{ role: 'outbound', pid: outbound.m.pid, allocatedBytes: outbound.allocated }, { role: 'inbound', pid: inbound.m.pid, allocatedBytes: inbound.allocated }],
    controlPlane: { pid: cp.m.pid },
    admins: [outbound.listening.admin!, inbound.listening.admin!],
    async freshClientProxy() {
      const p = await startClient(`trellis-fresh-${n++}`, []);
      return { url: `http://${p.listening['outbound:backend']}`, pid: p.m.pid, stop: () => p.m.stop() };
    },
    stop: async () => { await outbound.m.stop(); await inbound.m.stop(); await cp.m.stop(); rmSync(dataDir, { recursive: true, force: true }); },
  };
}
