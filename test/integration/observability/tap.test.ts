/**
 * Live tap and denials end to end with real processes: a control plane, two services (frontend → backend) and
 * their proxies, and the real `trellis tap` CLI. Lines carry the right source/destination/method/path/status;
 * --method/--path filter; -o json has the request headers with authorization redacted; a tap client that never
 * reads does not slow or fail traffic, and a normal tap afterwards still works; an AuthorizationPolicy deny shows
 * up in GET /api/v1/denials.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { REPO_ROOT, TRELLIS_BIN, startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { applyAndWait, client, eventually, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';
import type { TapEvent } from '../../../src/sdk/client.js';

// Inherited by the proxies: denials ride on stats messages.
process.env.TRELLIS_STATS_INTERVAL_MS = '300';

const API = 'trellis.dev/v1alpha1';

interface TapCli {
  stdout: string[];
  stderr: () => string;
  waitForLine(pred: (line: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

const taps = new Set<TapCli>();

/** `trellis tap ...` as a long-running process, its stdout split in lines. */
function startTap(api: string, args: string[]): TapCli {
  const proc = spawn(process.execPath, [TRELLIS_BIN, 'tap', ...args, '--api', `http://${api}`], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  let err = '';
  let partial = '';
  const waiters = new Set<() => void>();
  const notify = () => { for (const w of [...waiters]) w(); };
  proc.stdout.setEncoding('utf8').on('data', (c: string) => {
    const parts = (partial + c).split('\n');
    partial = parts.pop()!;
    stdout.push(...parts);
    notify();
  });
  proc.stderr.setEncoding('utf8').on('data', (c: string) => { err += c; notify(); });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => { notify(); resolve(code); }));
  const until = (check: () => boolean, what: string, timeoutMs: number) => new Promise<void>((resolve, reject) => {
    const fn = () => {
      if (check()) { clearTimeout(timer); waiters.delete(fn); resolve(); }
      else if (proc.exitCode !== null) { clearTimeout(timer); waiters.delete(fn); reject(new Error(`tap exited (${proc.exitCode}) before ${what}\nstderr: ${err}`)); }
    };
    const timer = setTimeout(() => { waiters.delete(fn); reject(new Error(`timed out waiting for ${what}\nstdout:\n${stdout.join('\n')}\nstderr:\n${err}`)); }, timeoutMs);
    waiters.add(fn);
    fn();
  });
  const cli: TapCli = {
    stdout,
    stderr: () => err,
    async waitForLine(pred, what, timeoutMs = 15_000) {
      await until(() => stdout.some(pred), what, timeoutMs);
      return stdout.find(pred)!;
    },
    waitForStderr: (re, timeoutMs = 15_000) => until(() => re.test(err), String(re), timeoutMs),
    exited,
    async stop(signal = 'SIGINT') {
      taps.delete(cli);
      if (proc.exitCode === null) proc.kill(signal);
      return exited;
    },
  };
  taps.add(cli);
  return cli;
}

describe('trellis tap and denials', () => {
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  const apps: TestApp[] = [];
  let backend: MeshProxy;
  let frontend: MeshProxy;

  before(async () => {
    cp = await startControlPlane();
    const b = await startHttpApp('b1');
    const f = await startHttpApp('fe');
    apps.push(b, f);
    backend = await startMeshProxy(cp, { service: 'backend', app: b.address });
    frontend = await startMeshProxy(cp, { service: 'frontend', app: f.address, outbound: ['backend'] });
    await waitForEndpoints(frontend, 'backend', 1);
  });

  after(async () => {
    await Promise.all([...taps].map((t) => t.stop('SIGKILL')));
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('prints one line per request, inbound at the destination and outbound at the caller; Ctrl-C exits 0', async () => {
    const atBackend = startTap(cp.api, ['backend']);
    const atFrontend = startTap(cp.api, ['frontend']);
    await atBackend.waitForStderr(/tapping 1 instance\(s\) of backend/);
    await atFrontend.waitForStderr(/tapping 1 instance\(s\) of frontend/);
    assert.equal((await httpGet(frontend.outbound.backend!, '/items/7')).status, 200);
    assert.equal((await httpGet(frontend.outbound.backend!, '/status/503')).status, 503);
    const inbound = await atBackend.waitForLine((l) => /\/items\/7/.test(l), 'the inbound line');
    assert.match(inbound, /^\d\d:\d\d:\d\d\.\d{3}\s+inbound\s+frontend → backend\s+GET\s+\/items\/7\s+200\s+[\d.]+ms\s+-$/);
    const outbound = await atFrontend.waitForLine((l) => /\/status\/503/.test(l), 'the outbound 503 line');
    assert.match(outbound, /outbound\s+frontend → backend\s+GET\s+\/status\/503\s+503\s+[\d.]+ms\s+-$/);
    assert.match(atBackend.stdout[0]!, /^TIME\s+DIRECTION\s+SOURCE → DESTINATION\s+METHOD\s+PATH\s+STATUS\s+LATENCY\s+ERROR$/);
    assert.equal(await atBackend.stop('SIGINT'), 0);
    assert.equal(await atFrontend.stop('SIGTERM'), 0);
    // The control plane ended both sessions (and told the proxies).
    await eventually(async () => /trellis_cp_tap_sessions 0/.test(await client(cp).metrics()), 10_000, 'no tap session left');
  });

  it('--method and --path filter; -o json prints TapEvents with headers, authorization redacted', async () => {
    const tap = startTap(cp.api, ['backend', '--method', 'post', '--path', '/orders', '-o', 'json']);
    await tap.waitForStderr(/tapping 1 instance/);
    const call = (method: string, path: string) => httpGet(frontend.outbound.backend!, path, { authorization: 'Bearer s3cret-token', 'x-custom': 'hello' }, method, method === 'POST' ? '{}' : undefined);
    assert.equal((await call('GET', '/orders/1')).status, 200);
    assert.equal((await call('POST', '/other')).status, 200);
    assert.equal((await call('POST', '/orders/2?q=1')).status, 200);
    await tap.waitForLine((l) => l.includes('/orders/2'), 'the POST /orders/2 event');
    // Requests are reported in order by the one backend proxy: the non-matching ones would have come first.
    const events = tap.stdout.filter((l) => l.trim()).map((l) => JSON.parse(l) as TapEvent);
    assert.equal(events.length, 1, tap.stdout.join('\n'));
    const e = events[0]!;
    assert.equal(e.method, 'POST');
    assert.equal(e.path, '/orders/2?q=1');
    assert.equal(e.direction, 'inbound');
    assert.equal(e.source, 'frontend');
    assert.equal(e.destination, 'backend');
    assert.equal(e.status, 200);
    assert.equal(e.requestHeaders.authorization, '[redacted]');
    assert.equal(e.requestHeaders['x-custom'], 'hello');
    assert.ok(e.requestId, 'x-request-id');
    assert.ok(!JSON.stringify(events).includes('s3cret-token'));
    assert.equal(await tap.stop(), 0);
  });

  it('an invalid filter exits 1 with the field path', async () => {
    const tap = startTap(cp.api, ['backend', '--path', 'no-slash']);
    assert.equal(await tap.exited, 1);
    assert.match(tap.stderr(), /error: invalid tap filter\npath: must start with \//);
    await tap.stop();
  });

  it('a tap client that never reads slows nothing: every request succeeds, and a normal tap still works', async () => {
    const [host, port] = cp.api.split(':') as [string, string];
    const stuck = net.connect(Number(port), host);
    stuck.pause(); // never reads the event stream
    stuck.write('GET /api/v1/tap?service=backend HTTP/1.1\r\nhost: cp\r\naccept: text/event-stream\r\n\r\n');
    await eventually(async () => /trellis_cp_tap_sessions 1/.test(await client(cp).metrics()), 10_000, 'the stuck tap session');
    const total = 600;
    let next = 0;
    let failures = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const res = await httpGet(frontend.outbound.backend!, `/load/${i}/${'x'.repeat(500)}`, { 'x-pad': 'y'.repeat(200) });
        if (res.status !== 200) failures++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    assert.equal(failures, 0);

    const tap = startTap(cp.api, ['backend']);
    await tap.waitForStderr(/tapping 1 instance/);
    assert.equal((await httpGet(frontend.outbound.backend!, '/after-stuck')).status, 200);
    await tap.waitForLine((l) => /inbound\s+frontend → backend\s+GET\s+\/after-stuck\s+200/.test(l), 'a line from the normal tap');
    assert.equal(await tap.stop(), 0);
    stuck.destroy();
    await eventually(async () => /trellis_cp_tap_sessions 0/.test(await client(cp).metrics()), 10_000, 'the stuck session to end');
  });

  it('a proxy of the tapped service that connects later is tapped too', async () => {
    const tap = startTap(cp.api, ['backend', '-o', 'json']);
    await tap.waitForStderr(/tapping 1 instance/);
    const b2 = await startHttpApp('b2');
    apps.push(b2);
    const late = await startMeshProxy(cp, { service: 'backend', app: b2.address });
    await tap.waitForStderr(/tapping 2 instance/);
    await waitForEndpoints(frontend, 'backend', 2);
    const seen = new Set<string>();
    await eventually(async () => {
      assert.equal((await httpGet(frontend.outbound.backend!, '/late')).status, 200);
      for (const l of tap.stdout) if (l.trim()) seen.add((JSON.parse(l) as TapEvent).instance);
      return seen.size === 2;
    }, 15_000, 'events from both backend instances');
    assert.ok([...seen].every((id) => id.startsWith('backend-')));
    await late.stop();
    await tap.waitForStderr(/tapping 2 instance[^]*tapping 1 instance/);
    await waitForEndpoints(frontend, 'backend', 1);
    assert.equal(await tap.stop(), 0);
  });

  it('an AuthorizationPolicy deny shows up in GET /api/v1/denials', async () => {
    await applyAndWait(cp, backend, [{
      apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name: 'deny-admin' },
      spec: { targetRef: { name: 'backend' }, action: 'DENY', rules: [{ to: [{ paths: ['/admin/*'] }] }] },
    }]);
    const res = await httpGet(frontend.outbound.backend!, '/admin/users');
    assert.equal(res.status, 403);
    const denials = await eventually(async () => {
      const list = await client(cp).denials({ service: 'backend' });
      return list.some((d) => d.path === '/admin/users') ? list : undefined;
    }, 10_000, 'the denial to be reported');
    const d = denials!.find((x) => x.path === '/admin/users')!;
    assert.equal(d.source, 'frontend');
    assert.equal(d.destination, 'backend');
    assert.equal(d.method, 'GET');
    assert.equal(d.policy, 'deny-admin');
    assert.equal(d.rule, 0);
    assert.match(d.instance, /^backend-/);
    assert.deepEqual(await client(cp).denials({ service: 'frontend' }), []);
  });
});
