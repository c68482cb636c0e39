/**
 * Every protocol through the mesh: HTTP/2 with trailers, gRPC (unary, server and bidi streaming,
 * error statuses), WebSocket upgrades and plain TCP.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { EchoClient, startGrpcApp, startH2App, startHttpApp, startTcpEcho, startWsApp, type TestApp } from '../../helpers/apps.js';
import { startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

describe('protocols through the mesh', () => {
  const apps: TestApp[] = [];
  let client: MeshProxy;

  before(async () => {
    const cp = await startControlPlane();
    const h2 = await startH2App('h2app');
    const grpcApp = await startGrpcApp('grpcapp');
    const ws = await startWsApp('wsapp');
    const tcp = await startTcpEcho('tcpapp');
    const caller = await startHttpApp('caller');
    apps.push(h2, grpcApp, ws, tcp, caller);
    await startMeshProxy(cp, { service: 'h2svc', app: h2.address, protocol: 'http2' });
    await startMeshProxy(cp, { service: 'grpcsvc', app: grpcApp.address, protocol: 'grpc' });
    await startMeshProxy(cp, { service: 'wssvc', app: ws.address, protocol: 'http' });
    await startMeshProxy(cp, { service: 'tcpsvc', app: tcp.address, protocol: 'tcp' });
    client = await startMeshProxy(cp, { service: 'caller', app: caller.address, outbound: ['h2svc', 'grpcsvc', 'wssvc', 'tcpsvc'] });
    for (const s of ['h2svc', 'grpcsvc', 'wssvc', 'tcpsvc']) await waitForEndpoints(client, s, 1);
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('carries HTTP/2 with trailers', async () => {
    const session = http2.connect(`http://${client.outbound.h2svc}`);
    try {
      const result = await new Promise<{ status: number; body: string; trailers: http2.IncomingHttpHeaders }>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/h2' });
        let status = 0;
        let body = '';
        let trailers: http2.IncomingHttpHeaders = {};
        stream.on('response', (h) => { status = Number(h[':status']); });
        stream.on('trailers', (t) => { trailers = t; });
        stream.setEncoding('utf8');
        stream.on('data', (d: string) => { body += d; });
        stream.on('end', () => resolve({ status, body, trailers }));
        stream.on('error', reject);
        stream.end('ping');
      });
      assert.equal(result.status, 200);
      assert.equal(JSON.parse(result.body).body, 'ping');
      assert.equal(result.trailers['x-trailer'], 'done');
    } finally {
      session.close();
    }
  });

  it('carries gRPC unary calls, streams and error statuses', async () => {
    const c = new EchoClient(client.outbound.grpcsvc!, grpc.credentials.createInsecure()) as any;
    try {
      const unary = await new Promise<any>((resolve, reject) => c.Echo({ hello: 'mesh' }, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));
      assert.deepEqual(unary.echo, { hello: 'mesh' });
      assert.equal(unary.peer, 'spiffe://trellis.local/service/caller');

      const items: any[] = [];
      await new Promise<void>((resolve, reject) => {
        const call = c.Count({ n: 50 });
        call.on('data', (m: unknown) => items.push(m));
        call.on('end', resolve);
        call.on('error', reject);
      });
      assert.equal(items.length, 50);
      assert.equal(items[49].i, 49);

      const replies: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const call = c.Chat();
        call.on('data', (m: { text: string }) => replies.push(m.text));
        call.on('end', resolve);
        call.on('error', reject);
        for (const t of ['a', 'b', 'c']) call.write({ text: t });
        call.end();
      });
      assert.deepEqual(replies, ['A', 'B', 'C']);

      const failure = await new Promise<grpc.ServiceError>((resolve) => c.Fail({}, (err: grpc.ServiceError) => resolve(err)));
      assert.equal(failure.code, grpc.status.FAILED_PRECONDITION, 'grpc-status trailer preserved end to end');
      assert.equal(failure.details, 'failing on purpose');
    } finally {
      c.close();
    }
  });

  it('upgrades WebSockets end to end', async () => {
    const ws = new WebSocket(`ws://${client.outbound.wssvc}/chat`);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send('hi'));
      ws.on('message', (d) => resolve(d.toString()));
      ws.on('error', reject);
    });
    ws.close();
    assert.equal(reply, 'wsapp:hi');
  });

  it('tunnels plain TCP', async () => {
    const socket = net.connect(Number(client.outbound.tcpsvc!.split(':')[1]), '127.0.0.1');
    const received = await new Promise<string>((resolve, reject) => {
      let data = '';
      socket.on('connect', () => socket.write('hello'));
      socket.on('data', (d) => {
        data += d.toString();
        if (data.endsWith('hello')) resolve(data);
      });
      socket.on('error', reject);
    });
    socket.destroy();
    assert.equal(received, 'tcpapp:hello');
  });

  it('between the proxies: HTTP/2 and gRPC services multiplexed on HTTP/2; HTTP/1.1 services on keep-alive HTTP/1.1, whatever the request arrived in', async () => {
    const http1 = await fetch(`http://${client.outbound.wssvc}/plain`);
    assert.equal(http1.status, 426, 'the WebSocket app answers plain requests with 426');
    await http1.arrayBuffer();
    const metrics = await (await fetch(`http://${client.admin}/metrics`)).text();
    const opened = (destination: string, protocol: string) => Number(metrics.match(new RegExp(`^trellis_peer_connections_total\\{[^}]*destination="${destination}",protocol="${protocol}"[^}]*\\} (\\d+)$`, 'm'))?.[1] ?? 0);
    assert.equal(opened('h2svc', 'h2'), 1, 'one HTTP/2 session to the http2 service, every earlier request on it');
    assert.equal(opened('grpcsvc', 'h2'), 1, 'one HTTP/2 session to the gRPC service');
    assert.equal(opened('h2svc', 'http/1.1') + opened('grpcsvc', 'http/1.1'), 0);
    assert.equal(opened('wssvc', 'http/1.1'), 1, 'the HTTP/1.1 service is reached over an HTTP/1.1 mTLS connection');
    assert.equal(opened('wssvc', 'h2'), 0);
    // A request that reaches the proxy over HTTP/2 (h2c) goes to an HTTP/1.1 service's peer over HTTP/1.1 too.
    const h2 = http2.connect(`http://${client.outbound.wssvc}`);
    const status = await new Promise<number>((resolve, reject) => {
      const stream = h2.request({ ':path': '/over-h2' });
      stream.on('response', (h) => { stream.resume(); stream.on('end', () => resolve(Number(h[':status']))); });
      stream.on('error', reject);
      stream.end();
    });
    h2.close();
    assert.equal(status, 426);
    const after = await (await fetch(`http://${client.admin}/metrics`)).text();
    assert.doesNotMatch(after, /^trellis_peer_connections_total\{[^}]*destination="wssvc",protocol="h2"/m, 'no HTTP/2 session to the HTTP/1.1 service');
    assert.match(after, /^trellis_peer_connections_total\{[^}]*destination="wssvc",protocol="http\/1\.1"[^}]*\} [12]$/m);
  });
});
