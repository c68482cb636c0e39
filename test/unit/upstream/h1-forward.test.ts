/**
 * The HTTP/1.1 upstream hop (upstream/h1-forward.ts) and the router's use of it for HTTP/1.1
 * services (filters/router.ts): what counts as "refused" (safe to send elsewhere), that the body
 * is left unread when the connection fails, and the per-peer queue bound. Real local servers on port 0.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { MeshError } from '../../../src/api/errors.js';
import { h1Forward, plainPool, type H1Target } from '../../../src/proxy/upstream/h1-forward.js';
import type { Pool } from '../../../src/proxy/upstream/undici-pool.js';
import { Router } from '../../../src/proxy/filters/router.js';
import { ClusterRuntime } from '../../../src/proxy/upstream/cluster.js';
import { EndpointState } from '../../../src/proxy/upstream/endpoint-state.js';
import { ProxyMetrics } from '../../../src/proxy/metrics.js';
import { PEER_H1_MAX_QUEUED, PEER_H1_MAX_SOCKETS, type PeerH1Pool } from '../../../src/proxy/upstream/peer-pool.js';
import type { ProxyServices } from '../../../src/proxy/runtime/services.js';
import { meshRequest, readAll } from '../filters/helpers.js';

const closers: Array<() => void> = [];
after(() => { for (const close of closers) close(); });

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => server.close());
  return (server.address() as AddressInfo).port;
}

/** An HTTP/1.1 app that echoes method, path, host, the deadline header and the body. */
async function echoApp(): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, path: req.url, host: req.headers.host, deadline: req.headers['x-trellis-deadline'] ?? null, body: Buffer.concat(chunks).toString() }));
    });
  });
  server.on('connection', () => connections++);
  server.keepAliveTimeout = 60_000;
  closers.push(() => server.closeAllConnections());
  return { port: await listen(server), connections: () => connections };
}

/** Answers the first request on a connection with keep-alive, then resets it when the next one arrives. */
function staleConnectionServer(): Promise<number> {
  return listen(net.createServer((socket) => {
    let served = 0;
    socket.on('data', () => {
      if (served++ === 0) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok');
      else socket.resetAndDestroy();
    });
  }));
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function target(port: number, options: Pool.Options = {}): H1Target {
  const pool = plainPool('127.0.0.1', port, 2_000, options);
  closers.push(() => { pool.destroy().catch(() => {}); });
  return { pool, label: `peer 127.0.0.1:${port}` };
}

async function rejection(p: Promise<unknown>): Promise<MeshError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MeshError, `a MeshError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('h1Forward', () => {
  test('forwards method, path, authority as Host, a deadline and the body; reuses the connection', async () => {
    const app = await echoApp();
    const t = target(app.port);
    const done: Array<[number | undefined, Error | undefined]> = [];
    for (let i = 0; i < 3; i++) {
      const req = meshRequest({ method: 'POST', path: `/items/${i}`, authority: 'backend.mesh', bodyText: `payload ${i}`, deadline: performance.now() + 5_000 });
      const res = await h1Forward(t, req, { done: (status, err) => done.push([status, err]) });
      assert.equal(res.status, 200);
      const echoed = JSON.parse(await readAll(res.body!)) as Record<string, string | null>;
      assert.deepEqual({ ...echoed, deadline: echoed.deadline !== null }, { method: 'POST', path: `/items/${i}`, host: 'backend.mesh', deadline: true, body: `payload ${i}` });
      // The pool checks an idle connection for a FIN from the upstream for one event-loop turn before
      // reusing it; a request sent within that turn takes another connection.
      await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(done, [[200, undefined], [200, undefined], [200, undefined]], 'observer told once per exchange');
    assert.equal(app.connections(), 1, 'one keep-alive connection for three requests');
  });

  test('HEAD keeps the connection to a Trellis peer open; an app\'s is closed after it (a body may follow)', async () => {
    for (const [headKeepsConnection, expected] of [[true, 1], [false, 3]] as const) {
      const app = await echoApp();
      const t = { ...target(app.port), headKeepsConnection };
      for (let i = 0; i < 3; i++) {
        const res = await h1Forward(t, meshRequest({ method: 'HEAD', emptyBody: true }));
        assert.equal(res.status, 200);
        await readAll(res.body!);
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(app.connections(), expected, `headKeepsConnection=${headKeepsConnection}`);
    }
  });

  test('the pool\'s idle timeout closes idle connections only, never one waiting for a slow answer', async () => {
    const server = http.createServer((_req, res) => setTimeout(() => res.end('slow'), 300));
    const closed = new Promise((resolve) => server.once('connection', (socket: net.Socket) => socket.once('close', resolve)));
    const port = await listen(server);
    closers.push(() => server.closeAllConnections());
    const t = target(port, { keepAliveTimeout: 100, keepAliveMaxTimeout: 100 });
    const res = await h1Forward(t, meshRequest());
    assert.equal(res.status, 200);
    assert.equal(await readAll(res.body!), 'slow');
    await closed; // then closed once idle for 100 ms
  });

  test('response headers: hop-by-hop fields dropped, repeated Set-Cookie kept apart, trailers after the body', async () => {
    const server = net.createServer((socket) => socket.once('data', () => socket.write(
      'HTTP/1.1 200 OK\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\nset-cookie: a=1\r\nset-cookie: b=2\r\nx-many: 1\r\nx-many: 2\r\n'
      + 'trailer: x-sum\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-sum: 42\r\n\r\n')));
    const res = await h1Forward(target(await listen(server)), meshRequest());
    assert.deepEqual(res.headers, { 'set-cookie': ['a=1', 'b=2'], 'x-many': '1, 2' });
    assert.equal(await readAll(res.body!), 'ok');
    assert.deepEqual(res.trailers?.(), { 'x-sum': '42' });
  });

  test('a response body nobody reads holds the upstream back (backpressure); discarding it ends the exchange', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const total = 256 * chunk.length;
    let written = 0;
    let blocked!: () => void;
    const upstreamBlocked = new Promise<void>((resolve) => { blocked = resolve; });
    let upstreamClosed!: () => void;
    const closedUpstream = new Promise<void>((resolve) => { upstreamClosed = resolve; });
    const server = http.createServer((_req, res) => {
      res.on('close', () => upstreamClosed());
      const pump = (): void => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) { blocked(); res.once('drain', pump); return; }
        }
        res.end();
      };
      pump();
    });
    const done: Array<Error | undefined> = [];
    const res = await h1Forward(target(await listen(server)), meshRequest(), { done: (_s, err) => done.push(err) });
    await upstreamBlocked;
    await new Promise((resolve) => setTimeout(resolve, 100)); // time for a pool without backpressure to take it all
    assert.ok(written < total / 2, `the upstream is held back (wrote ${written} of ${total} bytes)`);
    assert.ok(res.body!.readableLength <= 2 * chunk.length, `the proxy buffers little (${res.body!.readableLength} bytes)`);
    res.body!.destroy();
    await closedUpstream;
    assert.equal(done.length, 1);
    assert.ok(done[0] instanceof Error, 'the exchange ended with an error');
  });

  test('a malformed or ambiguous response head (Content-Length and chunked, a bad header) is an upstream reset, never forwarded', async () => {
    for (const head of [
      'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nbad header\r\ncontent-length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok!',
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok', // unasked-for 100: the client gives up
    ]) {
      const server = net.createServer((socket) => socket.once('data', () => socket.end(head)));
      const err = await rejection(h1Forward(target(await listen(server)), meshRequest()));
      assert.equal(err.code, 'UPSTREAM_RESET', JSON.stringify(head));
      assert.equal(err.refused, false);
    }
  });

  test('repeated request header values go out as separate lines; Expect is not forwarded', async () => {
    let head = '';
    const server = net.createServer((socket) => socket.once('data', (d: Buffer) => {
      head = d.toString('latin1');
      socket.end('HTTP/1.1 204 No Content\r\n\r\n');
    }));
    const req = meshRequest({ headers: { 'x-many': ['1', '2'], expect: '100-continue' } });
    const res = await h1Forward(target(await listen(server)), req);
    assert.equal(res.status, 204);
    assert.match(head, /\r\nx-many: 1\r\nx-many: 2\r\n/);
    assert.doesNotMatch(head, /expect/i);
  });

  test('a header the client cannot send (CR/LF in a value) is a bad request, not tried on another endpoint', async () => {
    const app = await echoApp();
    const err = await rejection(h1Forward(target(app.port), meshRequest({ headers: { 'x-bad': 'a\r\nx-smuggled: 1' } })));
    assert.equal(err.code, 'BAD_REQUEST');
    assert.equal(err.refused, false);
    assert.equal(app.connections(), 0, 'nothing was sent');
  });

  test('a connection that cannot be made is refused, and the body is left unread', async () => {
    const req = meshRequest({ method: 'POST', bodyText: 'still here' });
    const err = await rejection(h1Forward(target(await closedPort()), req));
    assert.equal(err.code, 'UPSTREAM_CONNECT_FAILED');
    assert.equal(err.refused, true);
    assert.equal(await readAll(req.body), 'still here');
  });

  test('a reused keep-alive connection the upstream had closed is refused (safe to send elsewhere)', async () => {
    const t = target(await staleConnectionServer());
    const first = await h1Forward(t, meshRequest());
    assert.equal(await readAll(first.body!), 'ok');
    await new Promise((resolve) => setImmediate(resolve)); // the socket goes back to the pool
    const err = await rejection(h1Forward(t, meshRequest()));
    assert.equal(err.code, 'UPSTREAM_RESET');
    assert.equal(err.refused, true);
  });

  test('a reset on a fresh connection after the request was sent is not refused', async () => {
    const server = net.createServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    const err = await rejection(h1Forward(target(await listen(server)), meshRequest()));
    assert.equal(err.code, 'UPSTREAM_RESET');
    assert.equal(err.refused, false);
  });
});

describe('router over HTTP/1.1 peers', () => {
  function routerFor(ports: number[], pools: Map<string, PeerH1Pool>, metrics = new ProxyMetrics({ service: 'frontend', instance: 'i1' })) {
    const endpoints = ports.map((port, i) => new EndpointState({ id: `e${i}`, address: `127.0.0.1:${port}`, labels: {}, draining: false }));
    const cluster = new ClusterRuntime({ name: 'backend', protocol: 'http', endpoints: endpoints.map((e) => ({ id: e.id, address: e.address, labels: {}, draining: false })) }, endpoints, { probe: async () => true });
    closers.push(() => cluster.dispose());
    const services = {
      metrics,
      peers: {
        h1: (address: string) => {
          let pool = pools.get(address);
          if (!pool) {
            pool = { ...target(Number(address.split(':')[1])), inflight: 0 };
            pools.set(address, pool);
          }
          return pool;
        },
      },
    } as unknown as ProxyServices;
    const outcomes: string[] = [];
    const record = cluster.record.bind(cluster);
    cluster.record = (ep, outcome) => { outcomes.push(outcome); record(ep, outcome); };
    return { router: new Router([{ backend: { cluster }, weight: 1 }], services), metrics, outcomes };
  }

  test('a connect failure moves the request, body included, to another endpoint', async () => {
    const app = await echoApp();
    const dead = await closedPort();
    const { router } = routerFor([dead, app.port], new Map());
    for (let i = 0; i < 2; i++) { // round robin: one of the two starts on the dead endpoint
      const res = await router.handle(meshRequest({ method: 'POST', bodyText: `body ${i}` }));
      assert.equal(res.status, 200);
      assert.equal((JSON.parse(await readAll(res.body!)) as { body: string }).body, `body ${i}`);
    }
  });

  test('a stale keep-alive connection is not held against the endpoint (no outcome for outlier detection)', async () => {
    const { router, outcomes } = routerFor([await staleConnectionServer()], new Map());
    const first = await router.handle(meshRequest());
    assert.equal(await readAll(first.body!), 'ok');
    await new Promise((resolve) => setImmediate(resolve));
    const err = await rejection(router.handle(meshRequest()));
    assert.equal(err.code, 'UPSTREAM_RESET');
    assert.equal(err.refused, true);
    assert.deepEqual(outcomes, ['success'], 'only the answered request counts');
  });

  test(`more than ${PEER_H1_MAX_SOCKETS + PEER_H1_MAX_QUEUED} requests waiting for one peer → CIRCUIT_OPEN, counted`, async () => {
    const app = await echoApp();
    const pools = new Map<string, PeerH1Pool>();
    const { router, metrics } = routerFor([app.port], pools);
    const ok = await router.handle(meshRequest());
    await readAll(ok.body!);
    pools.get(`127.0.0.1:${app.port}`)!.inflight = PEER_H1_MAX_SOCKETS + PEER_H1_MAX_QUEUED;
    const err = await rejection(router.handle(meshRequest()));
    assert.equal(err.code, 'CIRCUIT_OPEN');
    const text = await metrics.registry.metrics();
    assert.match(text, /trellis_circuit_breaker_overflows_total\{[^}]*limit="peerQueue"[^}]*\} 1/);
  });
});
