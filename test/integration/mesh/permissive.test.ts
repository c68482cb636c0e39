/**
 * MeshConfig `mtls: PERMISSIVE` with real processes: the inbound port takes mTLS and plaintext
 * (HTTP/1.1, h2c via a gRPC client, TCP) at once; plaintext requests carry no identity (no
 * x-trellis-peer, spoofed copies stripped; authorization sees none; metrics and access logs say
 * source "unknown"); mesh callers keep theirs. Applying STRICT again closes plaintext connections and
 * refuses new ones while mesh traffic goes on, on the same proxy↔proxy connection.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { runCli, startControlPlane, stopAll, type StartedControlPlane } from '../../helpers/processes.js';
import { EchoClient, httpGet, startGrpcApp, startHttpApp, startTcpEcho, startWsApp, type TestApp } from '../../helpers/apps.js';
import { applyAndWait, client, eventually, startMeshProxy, waitForConfig, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

const API = 'trellis.dev/v1alpha1';
const CALLER_ID = 'spiffe://trellis.local/service/caller';

/** One plaintext HTTP/1.1 request on its own connection; resolves with the status, or the connection error. */
function plainGet(address: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; error?: string; trellisError?: string }> {
  return httpGet(address, path, headers).then(
    (r) => ({ status: r.status, ...(typeof r.headers['x-trellis-error'] === 'string' ? { trellisError: r.headers['x-trellis-error'] } : {}) }),
    (err: Error) => ({ status: 0, error: (err as NodeJS.ErrnoException).code ?? err.message }),
  );
}

/** A plaintext TCP exchange: connects, writes `text`, resolves with what came back before close or `bytes` arrived. */
function tcpExchange(address: string, text: string, bytes: number): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    let got = '';
    const socket = net.connect(port, host, () => socket.write(text));
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => { got += d; if (got.length >= bytes) socket.destroy(); });
    socket.on('error', () => {});
    socket.on('close', () => resolve(got));
  });
}

function grpcEcho(address: string, metadata: Record<string, string> = {}): Promise<{ peer: string | null; echo: unknown }> {
  const c = new EchoClient(address, grpc.credentials.createInsecure()) as unknown as {
    Echo(req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: { peer: string | null; echo: unknown }) => void): void;
    close(): void;
  };
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve, reject) => c.Echo({ hello: 'plain' }, md, { deadline: Date.now() + 10_000 }, (err, res) => {
    c.close();
    if (err) reject(err); else resolve(res);
  }));
}

async function metricsText(p: MeshProxy): Promise<string> {
  return (await fetch(`http://${p.admin}/metrics`)).text();
}

function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('MeshConfig mtls PERMISSIVE at the inbound listener', () => {
  let cp: StartedControlPlane;
  const apps: TestApp[] = [];
  let serverApp: TestApp;
  let grpcApp: TestApp;
  let server: MeshProxy;
  let caller: MeshProxy;
  let grpcsvc: MeshProxy;
  let tcpsvc: MeshProxy;
  let wsApp: TestApp;
  let wssvc: MeshProxy;
  let all: MeshProxy[];

  const setMode = async (mtls: 'STRICT' | 'PERMISSIVE') => {
    await client(cp).apply([{ apiVersion: API, kind: 'MeshConfig', metadata: { name: 'default' }, spec: { mtls, accessLog: { format: 'json' } } }]);
    for (const p of all) await waitForConfig(p, (s) => s.meshConfig?.mtls === mtls, `mtls ${mtls}`, 15_000);
  };
  const peerConnections = async () => sample(await metricsText(caller), 'trellis_peer_connections_total', { destination: 'server' });

  before(async () => {
    cp = await startControlPlane();
    serverApp = await startHttpApp('server');
    grpcApp = await startGrpcApp('grpcapp');
    const tcpApp = await startTcpEcho('tcpapp');
    const callerApp = await startHttpApp('caller');
    wsApp = await startWsApp('wsapp');
    apps.push(serverApp, grpcApp, tcpApp, callerApp, wsApp);
    server = await startMeshProxy(cp, { service: 'server', app: serverApp.address });
    grpcsvc = await startMeshProxy(cp, { service: 'grpcsvc', app: grpcApp.address, protocol: 'grpc' });
    tcpsvc = await startMeshProxy(cp, { service: 'tcpsvc', app: tcpApp.address, protocol: 'tcp' });
    wssvc = await startMeshProxy(cp, { service: 'wssvc', app: wsApp.address });
    caller = await startMeshProxy(cp, { service: 'caller', app: callerApp.address, outbound: ['server'] });
    all = [server, grpcsvc, tcpsvc, wssvc, caller];
    await waitForEndpoints(caller, 'server', 1);
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('under STRICT (the default) refuses plaintext before any request', async () => {
    const before = serverApp.seen.length;
    const r = await plainGet(server.inbound, '/strict');
    assert.equal(r.status, 0, 'no HTTP answer at all: the TLS handshake failed');
    assert.ok(r.error, 'the connection failed');
    assert.equal(await tcpExchange(tcpsvc.inbound, 'hello', 100), '', 'a plaintext TCP client gets no byte');
    assert.equal(serverApp.seen.length, before, 'nothing reached the app');
    // The mesh path works, and opens one proxy↔proxy connection that must survive the mode switches.
    assert.equal((await httpGet(caller.outbound.server!, '/mesh-before')).status, 200);
    assert.equal(await peerConnections(), 1);
  });

  it('under PERMISSIVE takes plaintext HTTP/1.1 without identity and mTLS with it, on the same port', async () => {
    await setMode('PERMISSIVE');
    const plain = await httpGet(server.inbound, '/plain', { 'x-trellis-peer': 'spiffe://trellis.local/service/admin', 'x-trellis-deadline': '1', 'x-request-id': 'plain-1' });
    assert.equal(plain.status, 200);
    const atApp = plain.json() as { headers: Record<string, string> };
    assert.equal(atApp.headers['x-trellis-peer'], undefined, 'no identity, and the spoofed copy was stripped');
    assert.equal(atApp.headers['x-trellis-deadline'], undefined);
    assert.equal(serverApp.seen.at(-1)?.path, '/plain');

    const mesh = await httpGet(caller.outbound.server!, '/mesh', { 'x-trellis-peer': 'spiffe://trellis.local/service/admin' });
    assert.equal(mesh.status, 200);
    assert.equal((mesh.json() as { headers: Record<string, string> }).headers['x-trellis-peer'], CALLER_ID);
    assert.equal(await peerConnections(), 1, 'the mesh connection opened under STRICT was kept');

    // Labelled: source "unknown" on the request series and the access log, a plaintext connection counted.
    const metrics = await metricsText(server);
    assert.ok((sample(metrics, 'trellis_requests_total', { direction: 'inbound', source: 'unknown', destination: 'server' }) ?? 0) >= 1, 'plaintext request counted with source="unknown"');
    assert.ok((sample(metrics, 'trellis_requests_total', { direction: 'inbound', source: 'caller', destination: 'server' }) ?? 0) >= 1);
    assert.ok((sample(metrics, 'trellis_inbound_plaintext_connections_total', { protocol: 'http/1.1' }) ?? 0) >= 1);
    const line = JSON.parse(await server.proc.waitForLine((l) => l.includes('"type":"access"') && l.includes('plain-1'), 5000)) as Record<string, unknown>;
    assert.equal(line.source, 'unknown');
    assert.equal(line.direction, 'inbound');
  });

  it('under PERMISSIVE takes h2c prior knowledge (a plaintext gRPC client) without identity', async () => {
    const plain = await grpcEcho(grpcsvc.inbound, { 'x-trellis-peer': 'spiffe://trellis.local/service/admin' });
    assert.deepEqual(plain.echo, { hello: 'plain' });
    assert.equal(plain.peer, null, 'no x-trellis-peer at the gRPC app');
    const metrics = await metricsText(grpcsvc);
    assert.ok((sample(metrics, 'trellis_inbound_plaintext_connections_total', { protocol: 'h2c' }) ?? 0) >= 1);
  });

  it('under PERMISSIVE tunnels plaintext TCP to a tcp service', async () => {
    assert.equal(await tcpExchange(tcpsvc.inbound, 'hello', 'tcpapp:hello'.length), 'tcpapp:hello');
  });

  it('under PERMISSIVE takes a plaintext WebSocket upgrade, without identity', async () => {
    const ws = new WebSocket(`ws://${wssvc.inbound}/chat`, { headers: { 'x-trellis-peer': 'spiffe://trellis.local/service/admin' } });
    try {
      await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
      const reply = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
      ws.send('hi');
      assert.equal(await reply, 'wsapp:hi');
      assert.equal(wsApp.seen.at(-1)?.path, '/chat');
      assert.equal(wsApp.seen.at(-1)?.headers['x-trellis-peer'], undefined, 'no identity, the spoofed copy stripped');
    } finally {
      ws.terminate();
    }
  });

  it('under PERMISSIVE answers bytes that are neither TLS nor HTTP with 400 and closes', async () => {
    const before = serverApp.seen.length;
    const answer = await tcpExchange(server.inbound, '\x00\x01\x02garbage', 1 << 16);
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /x-trellis-error: BAD_REQUEST/);
    assert.equal(serverApp.seen.length, before);
    assert.ok((sample(await metricsText(server), 'trellis_inbound_sniff_failures_total', { reason: 'garbage' }) ?? 0) >= 1);
  });

  it('an ALLOW policy naming a source denies the plaintext caller (403 FORBIDDEN) and admits the mesh caller; can-i agrees', async () => {
    await applyAndWait(cp, server, [{
      apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name: 'server-allow-caller' },
      spec: { targetRef: { name: 'server' }, action: 'ALLOW', rules: [{ from: [{ services: ['caller'] }] }] },
    }]);
    const before = serverApp.seen.length;
    const plain = await plainGet(server.inbound, '/denied');
    assert.equal(plain.status, 403);
    assert.equal(plain.trellisError, 'FORBIDDEN');
    assert.equal(serverApp.seen.length, before, 'the app never saw the plaintext request');
    assert.equal((await httpGet(caller.outbound.server!, '/allowed')).status, 200);

    const api = `http://${cp.api}`;
    const plainCanI = await runCli(['can-i', '--plaintext', '--to', 'server', 'GET', '/denied', '-o', 'json'], { api });
    assert.equal(plainCanI.code, 1, plainCanI.stderr);
    const decided = JSON.parse(plainCanI.stdout) as { outcome: string; identity: unknown; action: string };
    assert.equal(decided.outcome, 'FORBIDDEN');
    assert.equal(decided.identity, null);
    assert.equal(decided.action, 'NO_ALLOW_MATCH');
    assert.equal((await runCli(['can-i', '--from', 'caller', '--to', 'server', 'GET', '/allowed'], { api })).code, 0);

    await client(cp).delete('AuthorizationPolicy', 'server-allow-caller');
    await waitForConfig(server, (s) => s.authorizationPolicies.length === 0, 'no AuthorizationPolicy');
    // Default allow with no ALLOW policy: the plaintext caller is allowed again (what PERMISSIVE is for).
    assert.equal((await plainGet(server.inbound, '/open-again')).status, 200);
    const openCanI = await runCli(['can-i', '--plaintext', '--to', 'server', 'GET', '/open-again'], { api });
    assert.equal(openCanI.code, 0, openCanI.stdout + openCanI.stderr);
  });

  it('applying STRICT again closes plaintext connections and refuses new ones; mesh traffic goes on', async () => {
    // A plaintext keep-alive connection opened under PERMISSIVE.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const [host, port] = [server.inbound.split(':')[0], Number(server.inbound.split(':')[1])];
    const keptOpen = await new Promise<net.Socket>((resolve, reject) => {
      const req = http.get({ host, port, path: '/keep', agent }, (res) => { res.resume(); res.on('end', () => resolve(socket)); });
      let socket: net.Socket;
      req.on('socket', (s) => { socket = s; });
      req.on('error', reject);
    });
    assert.ok(!keptOpen.destroyed, 'the keep-alive connection is open before the switch');
    const closed = new Promise<void>((resolve) => keptOpen.once('close', () => resolve()));
    // An h2c session with a finished stream, and an open TCP tunnel.
    const session = http2.connect(`http://${grpcsvc.inbound}`);
    session.on('error', () => {});
    const sessionClosed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': '/trellis.test.Echo/Nope', 'content-type': 'application/grpc' });
      stream.on('response', () => {});
      stream.on('error', reject);
      stream.resume();
      stream.on('close', () => resolve());
      stream.end();
    });
    const tunnel = net.connect(Number(tcpsvc.inbound.split(':')[1]), tcpsvc.inbound.split(':')[0]);
    tunnel.on('error', () => {});
    await new Promise<void>((resolve) => { tunnel.write('x'); tunnel.once('data', () => resolve()); });
    const tunnelClosed = new Promise<void>((resolve) => tunnel.once('close', () => resolve()));
    const ws = new WebSocket(`ws://${wssvc.inbound}/kept`);
    ws.on('error', () => {});
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    const wsClosed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    // A plaintext request still sending its body when STRICT arrives: it is answered, then its connection closes.
    const busyAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const busy = http.request({ host, port, path: '/busy', method: 'POST', agent: busyAgent, headers: { 'content-type': 'text/plain' } });
    busy.on('error', () => {});
    const busyAnswer = new Promise<{ status: number; connection: unknown; body: string; closed: Promise<void> }>((resolve) => busy.on('response', (res) => {
      const closed = new Promise<void>((done) => res.socket.once('close', () => done()));
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body, closed }));
    }));
    busy.write('part1,');
    await eventually(() => serverApp.seen.some((r) => r.path === '/busy'), 10_000, 'the busy request to reach the app');

    await setMode('STRICT');
    await closed; // the switch closed the idle plaintext connection,
    await sessionClosed; // the h2c session (GOAWAY),
    await tunnelClosed; // the TCP tunnel,
    await wsClosed; // and the upgraded WebSocket connection
    busy.end('part2');
    const answered = await busyAnswer;
    assert.equal(answered.status, 200, 'the request under way when STRICT came is still answered');
    assert.equal((JSON.parse(answered.body) as { body: string }).body, 'part1,part2');
    assert.equal(answered.connection, 'close');
    await answered.closed;
    busyAgent.destroy();
    agent.destroy();
    const r = await plainGet(server.inbound, '/strict-again');
    assert.equal(r.status, 0, `plaintext refused again (${r.error})`);
    assert.equal(await tcpExchange(tcpsvc.inbound, 'hello', 100), '');
    await assert.rejects(grpcEcho(grpcsvc.inbound), 'a plaintext gRPC client is refused');

    const mesh = await httpGet(caller.outbound.server!, '/mesh-after');
    assert.equal(mesh.status, 200);
    assert.equal((mesh.json() as { headers: Record<string, string> }).headers['x-trellis-peer'], CALLER_ID);
    assert.equal(await peerConnections(), 1, 'still the connection opened at the start: switches never dropped it');
    const denied = await runCli(['can-i', '--plaintext', '--to', 'server', 'GET', '/x', '-o', 'json'], { api: `http://${cp.api}` });
    assert.equal(denied.code, 1);
    assert.equal((JSON.parse(denied.stdout) as { outcome: string }).outcome, 'MTLS_REQUIRED');
    await eventually(async () => (sample(await metricsText(server), 'trellis_proxy_errors_total', { code: 'FORBIDDEN' }) ?? 0) >= 1, 5000, 'the 403 to be counted');
  });
});
