/**
 * Observability end to end with real processes: the proxies' /metrics (request count, latency,
 * bytes by direction/source/destination/route/code, TCP opened/closed/active/bytes, timeouts) and
 * access log lines on stdout (none without MeshConfig.accessLog; JSON, then text, after applying one).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, startTcpEcho, type TestApp } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, waitForEndpoints, type MeshProxy } from '../../helpers/mesh.js';

const API = 'trellis.dev/v1alpha1';
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

/** The value of the one sample of `name` whose labels include `labels` (undefined when none). */
export function sample(text: string, name: string, labels: Record<string, string | undefined> = {}): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const m = /^([^{\s]+)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have[l[1]!] = l[2]!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total = (total ?? 0) + Number(m[3]);
  }
  return total;
}

async function metricsOf(proxy: MeshProxy): Promise<string> {
  return (await fetch(`http://${proxy.admin}/metrics`)).text();
}

async function configVersion(proxy: MeshProxy): Promise<{ version: string | null; snapshot: { meshConfig?: { accessLog?: { format: string } } } | null }> {
  return (await (await fetch(`http://${proxy.admin}/config`)).json()) as never;
}

describe('proxy metrics and access logs', () => {
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  const apps: TestApp[] = [];
  let backend: MeshProxy;
  let frontend: MeshProxy;
  let tcpProxy: MeshProxy;

  before(async () => {
    cp = await startControlPlane();
    const app = await startHttpApp('b1');
    const tcp = await startTcpEcho('tcpapp');
    const self = await startHttpApp('fe');
    apps.push(app, tcp, self);
    backend = await startMeshProxy(cp, { service: 'backend', app: app.address });
    tcpProxy = await startMeshProxy(cp, { service: 'tcpsvc', app: tcp.address, protocol: 'tcp' });
    frontend = await startMeshProxy(cp, { service: 'frontend', app: self.address, outbound: ['backend', 'tcpsvc'] });
    await waitForEndpoints(frontend, 'backend', 1);
    await waitForEndpoints(frontend, 'tcpsvc', 1);
    await client(cp).apply([{ apiVersion: API, kind: 'HTTPRoute', metadata: { name: 'backend-route' }, spec: {
      parentRefs: [{ name: 'backend' }],
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/slow' } }], timeouts: { request: '150ms' } },
        { matches: [{ path: { type: 'PathPrefix', value: '/' } }] },
      ],
    } }]);
    await eventually(async () => {
      const cfg = await (await fetch(`http://${frontend.admin}/config`)).json() as { snapshot?: { httpRoutes: Array<{ metadata: { name: string } }> } };
      return cfg.snapshot?.httpRoutes.some((r) => r.metadata.name === 'backend-route');
    }, 10_000, 'the route at the frontend proxy');
  });

  after(async () => {
    await stopAll();
    await Promise.all(apps.map((a) => a.close()));
  });

  it('counts requests, latency and bytes by direction, source, destination, route and code', async () => {
    const body = 'hello world'; // 11 bytes
    const ok = await httpGet(frontend.outbound.backend!, '/items/42?x=1', { 'content-type': 'text/plain' }, 'POST', body);
    assert.equal(ok.status, 200);
    const failed = await httpGet(frontend.outbound.backend!, '/status/500');
    assert.equal(failed.status, 500);
    const out = { direction: 'outbound', source: 'frontend', destination: 'backend' };
    const text = await eventually(async () => {
      const t = await metricsOf(frontend);
      return sample(t, 'trellis_requests_total', { ...out, code: '500' }) === 1 ? t : undefined;
    }, 5000, 'outbound request metrics') as string;
    const route = /trellis_requests_total\{[^}]*direction="outbound"[^}]*route="([^"]+)"[^}]*code="200"/.exec(text)?.[1];
    assert.ok(route && route.startsWith('backend-route'), `route label: ${route}`);
    assert.ok(!/route="\/items/.test(text), 'no raw paths in labels');
    assert.equal(sample(text, 'trellis_requests_total', { ...out, route, code: '200', classification: 'success' }), 1);
    assert.equal(sample(text, 'trellis_requests_total', { ...out, code: '500', classification: 'failure' }), 1);
    assert.equal(sample(text, 'trellis_request_duration_ms_count', { ...out, classification: 'success' }), 1);
    assert.equal(sample(text, 'trellis_request_duration_ms_bucket', { ...out, classification: 'success', le: '+Inf' }), 1);
    assert.equal(sample(text, 'trellis_request_bytes_total', { ...out, route }), 11);
    const responseBytes = sample(text, 'trellis_response_bytes_total', out)!;
    assert.equal(responseBytes, Buffer.byteLength(ok.body) + Buffer.byteLength(failed.body));
    // Proxy-wide labels: service and instance on every series.
    assert.match(text, /trellis_requests_total\{[^}]*service="frontend"[^}]*instance="frontend-/);

    const inb = { direction: 'inbound', source: 'frontend', destination: 'backend' };
    const bt = await eventually(async () => {
      const t = await metricsOf(backend);
      return sample(t, 'trellis_requests_total', { ...inb, code: '500' }) === 1 ? t : undefined;
    }, 5000, 'inbound request metrics') as string;
    assert.equal(sample(bt, 'trellis_requests_total', { ...inb, code: '200' }), 1);
    assert.equal(sample(bt, 'trellis_request_bytes_total', inb), 11);
    assert.equal(sample(bt, 'trellis_response_bytes_total', inb), responseBytes);
  });

  it('counts timeouts by direction and destination', async () => {
    const res = await httpGet(frontend.outbound.backend!, '/slow?ms=2000');
    assert.equal(res.status, 504);
    assert.equal(res.headers['x-trellis-error'], 'UPSTREAM_TIMEOUT');
    // The deadline travels to the backend's proxy (x-trellis-deadline), which bounds the wait for its app
    // too: whichever proxy's timer fires first answers the 504 and counts the timeout (on a loaded machine
    // the caller's timer can run late). The request itself is counted at the caller's proxy either way.
    const text = await eventually(async () => {
      const t = await metricsOf(frontend);
      return sample(t, 'trellis_requests_total', { direction: 'outbound', destination: 'backend', code: '504', classification: 'failure' }) === 1 ? t : undefined;
    }, 5000, 'the 504 counted at the caller') as string;
    const atCaller = sample(text, 'trellis_timeouts_total', { direction: 'outbound', destination: 'backend' }) ?? 0;
    const atDestination = sample(await metricsOf(backend), 'trellis_timeouts_total', { direction: 'inbound', destination: 'backend' }) ?? 0;
    assert.ok(atCaller === 1 || atDestination === 1, `timeouts counted: caller ${atCaller}, destination ${atDestination}`);
    assert.ok(atCaller <= 1 && atDestination <= 1);
  });

  it('counts TCP connections opened, closed, active and bytes each way', async () => {
    const socket = net.connect(Number(frontend.outbound.tcpsvc!.split(':')[1]), '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8').on('data', (c: string) => { received += c; });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('hello');
    await eventually(() => received === 'tcpapp:hello', 5000, 'the TCP echo');
    const open = await metricsOf(frontend);
    assert.equal(sample(open, 'trellis_tcp_connections_opened_total', { direction: 'outbound', peer: 'tcpsvc' }), 1);
    assert.equal(sample(open, 'trellis_tcp_connections_active', { direction: 'outbound' }), 1);
    socket.end();
    const closed = await eventually(async () => {
      const t = await metricsOf(frontend);
      return sample(t, 'trellis_tcp_connections_closed_total', { direction: 'outbound', peer: 'tcpsvc' }) === 1 ? t : undefined;
    }, 5000, 'the outbound TCP close') as string;
    assert.equal(sample(closed, 'trellis_tcp_connections_active', { direction: 'outbound' }), 0);
    assert.equal(sample(closed, 'trellis_tcp_received_bytes_total', { direction: 'outbound', peer: 'tcpsvc' }), 5);
    assert.equal(sample(closed, 'trellis_tcp_sent_bytes_total', { direction: 'outbound', peer: 'tcpsvc' }), 12);
    const inbound = await eventually(async () => {
      const t = await metricsOf(tcpProxy);
      return sample(t, 'trellis_tcp_connections_closed_total', { direction: 'inbound', peer: 'frontend' }) === 1 ? t : undefined;
    }, 5000, 'the inbound TCP close') as string;
    assert.equal(sample(inbound, 'trellis_tcp_connections_opened_total', { direction: 'inbound', peer: 'frontend' }), 1);
    assert.equal(sample(inbound, 'trellis_tcp_connections_active', { direction: 'inbound' }), 0);
    assert.equal(sample(inbound, 'trellis_tcp_received_bytes_total', { direction: 'inbound', peer: 'frontend' }), 5);
    assert.equal(sample(inbound, 'trellis_tcp_sent_bytes_total', { direction: 'inbound', peer: 'frontend' }), 12);
  });

  it('declares the resilience, zero-trust, config and certificate series', async () => {
    const text = await metricsOf(frontend);
    for (const name of ['trellis_retries_total', 'trellis_circuit_breaker_overflows_total', 'trellis_outlier_ejections_total',
      'trellis_rate_limited_total', 'trellis_authz_decisions_total', 'trellis_config_nacks_total', 'trellis_access_log_dropped_total']) {
      assert.match(text, new RegExp(`# TYPE ${name} counter`), name);
    }
    assert.ok(sample(text, 'trellis_config_version')! >= 1);
    assert.ok(sample(text, 'trellis_certificate_expiry_seconds')! > Date.now() / 1000);
  });

  it('writes no access log without MeshConfig.accessLog, then JSON lines, then text lines', async () => {
    const accessLines = (p: MeshProxy) => p.proc.stdoutLines.filter((l) => l.includes('"type":"access"') || l.startsWith('access '));
    assert.equal((await httpGet(frontend.outbound.backend!, '/before')).status, 200);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(accessLines(frontend), []);
    assert.deepEqual(accessLines(backend), []);

    const applyFormat = async (format: 'json' | 'text') => {
      await client(cp).apply([{ apiVersion: API, kind: 'MeshConfig', metadata: { name: 'default' }, spec: { accessLog: { format } } }]);
      for (const p of [frontend, backend]) {
        await eventually(async () => (await configVersion(p)).snapshot?.meshConfig?.accessLog?.format === format, 10_000, `accessLog ${format} at ${p.service}`);
      }
    };

    await applyFormat('json');
    const traceparent = `00-${TRACE}-00f067aa0ba902b7-01`;
    const res = await httpGet(frontend.outbound.backend!, '/items/7?q=a', { 'x-request-id': 'obs-json-1', traceparent, 'content-type': 'text/plain' }, 'POST', 'abc');
    assert.equal(res.status, 200);
    const line = await frontend.proc.waitForLine((l) => l.includes('"type":"access"') && l.includes('obs-json-1'), 5000);
    const o = JSON.parse(line) as Record<string, unknown>;
    assert.equal(o.direction, 'outbound');
    assert.equal(o.request_id, 'obs-json-1');
    assert.equal(o.trace_id, TRACE);
    assert.equal(o.source, 'frontend');
    assert.equal(o.destination, 'backend');
    assert.equal(o.method, 'POST');
    assert.equal(o.path, '/items/7?q=a');
    assert.equal(o.status, 200);
    assert.equal(o.error, '');
    assert.equal(o.request_bytes, 3);
    assert.equal(o.response_bytes, Buffer.byteLength(res.body));
    assert.equal(o.attempts, 1);
    assert.match(String(o.upstream), /^backend-/);
    assert.equal(o.upstream_address, backend.inbound);
    assert.ok(typeof o.latency_ms === 'number' && o.latency_ms > 0);
    assert.ok(!Number.isNaN(Date.parse(String(o.time))));
    // The destination's proxy logs the inbound side of the same request, same ids.
    const inboundLine = JSON.parse(await backend.proc.waitForLine((l) => l.includes('"type":"access"') && l.includes('obs-json-1'), 5000)) as Record<string, unknown>;
    assert.equal(inboundLine.direction, 'inbound');
    assert.equal(inboundLine.source, 'frontend');
    assert.equal(inboundLine.trace_id, TRACE);
    assert.equal(inboundLine.request_bytes, 3);
    // An error the proxy generated carries its x-trellis-error code.
    assert.equal((await httpGet(frontend.outbound.backend!, '/slow?ms=2000', { 'x-request-id': 'obs-json-timeout' })).status, 504);
    const timeoutLine = JSON.parse(await frontend.proc.waitForLine((l) => l.includes('obs-json-timeout'), 5000)) as Record<string, unknown>;
    assert.equal(timeoutLine.status, 504);
    assert.equal(timeoutLine.error, 'UPSTREAM_TIMEOUT');

    await applyFormat('text');
    assert.equal((await httpGet(frontend.outbound.backend!, '/status/503', { 'x-request-id': 'obs-text-1', traceparent })).status, 503);
    const text = await frontend.proc.waitForLine((l) => l.startsWith('access ') && l.includes('request_id=obs-text-1'), 5000);
    assert.match(text, /^access \S+Z outbound frontend->backend "GET \/status\/503" 503 - [\d.]+ms req_bytes=0 resp_bytes=\d+ route=\S+ upstream=backend-\S+ upstream_address=\S+ attempts=1 request_id=obs-text-1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736$/);
    // stdout still parses line by line: access lines never glue onto event lines.
    for (const l of frontend.proc.stdoutLines) assert.ok(l.startsWith('{') || l.startsWith('access '), l);
    const dropped = sample(await metricsOf(frontend), 'trellis_access_log_dropped_total');
    assert.equal(dropped, 0);
  });
});
