/**
 * Byte tunnels (WebSocket upgrades, TCP) are authorized like HTTP requests: an ALLOW policy admits
 * only the services it names, on the verified identity.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { startHttpApp, startTcpEcho, startWsApp, type TestApp } from '../../helpers/apps.js';
import { client, startMeshProxy, waitForConfig, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

const allowOnlyFrontend = (target: string) => ({
  apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: `${target}-allow-frontend` },
  spec: { targetRef: { name: target }, action: 'ALLOW', rules: [{ from: [{ services: ['frontend'] }] }] },
});

function wsEcho(address: string): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${address}/chat`);
    ws.on('open', () => ws.send('hi'));
    ws.on('message', (d) => { ws.close(); resolve(d.toString()); });
    ws.on('unexpected-response', (_req, res) => resolve(`status ${res.statusCode} ${res.headers['x-trellis-error']}`));
    ws.on('error', (err) => resolve(`error ${err.message}`));
  });
}

function tcpEcho(address: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(Number(address.split(':')[1]), '127.0.0.1');
    let data = '';
    s.on('connect', () => s.write('ping'));
    s.on('data', (d) => { data += d.toString(); if (data.endsWith('ping')) { s.destroy(); resolve(data); } });
    s.on('close', () => resolve(data || 'closed'));
    s.on('error', () => resolve('closed'));
  });
}

describe('authorization of WebSocket and TCP tunnels', () => {
  const apps: TestApp[] = [];
  let frontend: MeshProxy;
  let other: MeshProxy;
  let wsApp: TestApp;
  let tcpApp: TestApp;

  before(async () => {
    const cp = await startControlPlane();
    wsApp = await startWsApp('ws');
    tcpApp = await startTcpEcho('tcp');
    const f = await startHttpApp('frontend');
    const o = await startHttpApp('other');
    apps.push(wsApp, tcpApp, f, o);
    const chat = await startMeshProxy(cp, { service: 'chat', app: wsApp.address });
    const db = await startMeshProxy(cp, { service: 'db', app: tcpApp.address, protocol: 'tcp' });
    frontend = await startMeshProxy(cp, { service: 'frontend', app: f.address, outbound: ['chat', 'db'] });
    other = await startMeshProxy(cp, { service: 'other', app: o.address, outbound: ['chat', 'db'] });
    for (const p of [frontend, other]) { await waitForEndpoints(p, 'chat', 1); await waitForEndpoints(p, 'db', 1); }
    await client(cp).apply([allowOnlyFrontend('chat'), allowOnlyFrontend('db')]);
    // Each policy reaches the proxies of the service it targets.
    await waitForConfig(chat, (s) => s.authorizationPolicies.some((p: { metadata: { name: string } }) => p.metadata.name === 'chat-allow-frontend'));
    await waitForConfig(db, (s) => s.authorizationPolicies.some((p: { metadata: { name: string } }) => p.metadata.name === 'db-allow-frontend'));
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('admits the allowed service and refuses another one, before anything reaches the app', async () => {
    assert.equal(await wsEcho(other.outbound.chat!), 'status 403 FORBIDDEN');
    assert.equal(wsApp.seen.length, 0, 'a refused upgrade never reaches the app');
    assert.equal(await wsEcho(frontend.outbound.chat!), 'ws:hi');
    const seenBefore = tcpApp.seen.length;
    assert.equal(await tcpEcho(other.outbound.db!), 'closed');
    assert.equal(tcpApp.seen.length, seenBefore, 'a refused TCP connection never reaches the app');
    assert.equal(await tcpEcho(frontend.outbound.db!), 'tcp:ping');
  });
});
