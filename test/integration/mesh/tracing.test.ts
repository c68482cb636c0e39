/**
 * Distributed tracing end to end with real processes: a control plane, three proxies
 * (edge → frontend → backend), a frontend app that forwards the trace headers to its sidecar's
 * outbound listener, and a standalone OTLP/HTTP receiver process the proxies export spans to.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startControlPlane, stopAll } from '../../helpers/processes.js';
import { httpGet, startHttpApp, type TestApp } from '../../helpers/apps.js';
import { client, eventually, startMeshProxy, waitForEndpoints, type ControlPlaneRef, type MeshProxy } from '../../helpers/mesh.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../../helpers/otlp-receiver.js';

const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'x-request-id'];

/** The frontend app: calls backend through its sidecar's outbound listener, forwarding the trace headers. */
async function startFrontendApp(outbound: () => string): Promise<{ address: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const headers: Record<string, string> = {};
    for (const h of TRACE_HEADERS) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h];
    const [host, port] = outbound().split(':');
    const upstream = http.request({ host, port: Number(port), path: req.url, method: req.method, headers, agent: false }, (up) => {
      res.writeHead(up.statusCode ?? 502, { 'content-type': String(up.headers['content-type'] ?? 'text/plain') });
      up.pipe(res);
    });
    upstream.on('error', (err) => { res.writeHead(500); res.end(err.message); });
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

async function applyMeshConfig(cp: ControlPlaneRef, proxies: MeshProxy[], tracing: Record<string, unknown>): Promise<void> {
  await client(cp).apply([{ apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'default' }, spec: { tracing } }]);
  for (const p of proxies) {
    await eventually(async () => {
      const cfg = await (await fetch(`http://${p.admin}/config`)).json() as { snapshot: { meshConfig: { tracing?: { sampling?: number } } } };
      return cfg.snapshot.meshConfig.tracing?.sampling === tracing.sampling;
    }, 10_000, `${p.service} to get tracing sampling ${String(tracing.sampling)}`);
  }
}

function traceIdOf(traceparent: unknown): string {
  assert.equal(typeof traceparent, 'string');
  return (traceparent as string).split('-')[1]!;
}

/** The 4 spans of a trace in hop order: edge CLIENT → frontend SERVER → frontend CLIENT → backend SERVER. */
async function hops(receiver: OtlpReceiver, traceId: string): Promise<ReceivedSpan[]> {
  const spans = await eventually(async () => {
    const got = (await receiver.spans()).filter((s) => s.traceId === traceId);
    return got.length >= 4 ? got : undefined;
  }, 10_000, `4 spans of trace ${traceId}`) as ReceivedSpan[];
  assert.equal(spans.length, 4, JSON.stringify(spans, null, 2));
  const find = (service: string, kind: number) => {
    const s = spans.find((x) => x.resource['service.name'] === service && x.kind === kind);
    assert.ok(s, `a ${kind === 3 ? 'client' : 'server'} span of ${service}: ${JSON.stringify(spans, null, 2)}`);
    return s;
  };
  return [find('edge', 3), find('frontend', 2), find('frontend', 3), find('backend', 2)];
}

describe('distributed tracing (MeshConfig.tracing, OTLP/HTTP)', () => {
  let cp: ControlPlaneRef;
  let receiver: OtlpReceiver;
  let backendApp: TestApp;
  let edgeApp: TestApp;
  let frontendApp: Awaited<ReturnType<typeof startFrontendApp>>;
  let edge: MeshProxy;
  let frontend: MeshProxy;
  let backend: MeshProxy;

  before(async () => {
    receiver = await startOtlpReceiver();
    cp = await startControlPlane();
    backendApp = await startHttpApp('backend');
    edgeApp = await startHttpApp('edge');
    frontendApp = await startFrontendApp(() => frontend.outbound.backend!);
    backend = await startMeshProxy(cp, { service: 'backend', app: backendApp.address });
    frontend = await startMeshProxy(cp, { service: 'frontend', app: frontendApp.address, outbound: ['backend'] });
    edge = await startMeshProxy(cp, { service: 'edge', app: edgeApp.address, outbound: ['frontend'] });
    await waitForEndpoints(edge, 'frontend', 1);
    await waitForEndpoints(frontend, 'backend', 1);
    await client(cp).apply([{
      apiVersion: 'trellis.dev/v1alpha1', kind: 'HTTPRoute', metadata: { name: 'backend-route' },
      spec: { parentRefs: [{ name: 'backend' }], rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/fault' } }], filters: [{ type: 'FaultInjection', faultInjection: { abort: { status: 418, percent: 100 } } }] },
        { retry: { attempts: 2, backoff: '5ms', on: ['5xx'] } },
      ] },
    }]);
    await applyMeshConfig(cp, [edge, frontend, backend], { otlpEndpoint: receiver.endpoint, sampling: 100 });
  });

  after(async () => {
    await stopAll();
    await receiver?.stop();
    await Promise.all([backendApp?.close(), edgeApp?.close(), frontendApp?.close()]);
  });

  it('records one trace across the hops, each span the child of the previous hop, with attributes', async () => {
    const res = await httpGet(edge.outbound.frontend!, '/hello?x=1');
    assert.equal(res.status, 200, res.body);
    const seenByBackend = res.json().headers as Record<string, string>;
    const traceId = traceIdOf(seenByBackend.traceparent);

    const [edgeClient, frontServer, frontClient, backServer] = await hops(receiver, traceId);
    assert.equal(edgeClient!.parentSpanId, '', 'the edge span is the root');
    assert.equal(frontServer!.parentSpanId, edgeClient!.spanId);
    assert.equal(frontClient!.parentSpanId, frontServer!.spanId);
    assert.equal(backServer!.parentSpanId, frontClient!.spanId);
    // The backend app sees the backend server span as its parent.
    assert.equal(seenByBackend.traceparent, `00-${traceId}-${backServer!.spanId}-01`);

    assert.equal(edgeClient!.attributes['trellis.service'], 'edge');
    assert.equal(edgeClient!.attributes['peer.service'], 'frontend');
    assert.equal(frontServer!.attributes['peer.service'], 'edge');
    assert.equal(frontClient!.attributes['peer.service'], 'backend');
    assert.equal(backServer!.attributes['peer.service'], 'frontend');
    for (const s of [edgeClient!, frontServer!, frontClient!, backServer!]) {
      assert.equal(s.attributes['http.request.method'], 'GET');
      assert.equal(s.attributes['http.response.status_code'], 200);
      assert.equal(s.attributes['url.path'], '/hello');
      assert.match(String(s.attributes['trellis.upstream.address']), /^127\.0\.0\.1:\d+$/);
      assert.ok(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
    }
    assert.equal(backServer!.attributes['trellis.upstream.address'], backendApp.address);
    assert.equal(frontClient!.attributes['trellis.upstream.address'], backend.inbound);
    assert.match(String(frontClient!.attributes['http.route']), /backend-route/);
    assert.equal(frontClient!.attributes['trellis.retry.attempts'], 1);
    assert.ok(edgeClient!.attributes['http.route'], 'the edge span names its route');
  });

  it('records retries and the x-trellis-error code', async () => {
    const res = await httpGet(edge.outbound.frontend!, '/status/503');
    assert.equal(res.status, 503);
    const traceId = traceIdOf(backendApp.seen.at(-1)!.headers.traceparent);
    const spans = await eventually(async () => {
      const got = (await receiver.spans()).filter((s) => s.traceId === traceId);
      return got.length >= 6 ? got : undefined; // edge, frontend ×2, backend ×3 tries
    }, 10_000, 'the spans of the retried trace') as ReceivedSpan[];
    const frontClient = spans.find((s) => s.resource['service.name'] === 'frontend' && s.kind === 3)!;
    assert.equal(frontClient.attributes['trellis.retry.attempts'], 3);
    assert.equal(frontClient.attributes['http.response.status_code'], 503);
    assert.equal(frontClient.statusCode, 2, 'a 5xx is an error');
    assert.equal(spans.filter((s) => s.resource['service.name'] === 'backend').length, 3, 'one server span per try');


    // A response the proxy makes itself (FaultInjection abort on the frontend's outbound route).
    const fault = await httpGet(edge.outbound.frontend!, '/fault');
    assert.equal(fault.status, 418);
    const faultSpan = await eventually(async () => (await receiver.spans()).find((s) =>
      s.resource['service.name'] === 'frontend' && s.kind === 3 && s.attributes['url.path'] === '/fault'), 10_000, 'the fault span') as ReceivedSpan;
    assert.equal(faultSpan.attributes['trellis.error_code'], 'FAULT_INJECTED');
    assert.equal(faultSpan.attributes['http.response.status_code'], 418);
  });

  it('continues an incoming B3 trace', async () => {
    const traceId = '463ac35c9f6413ad48485a3953bb6124';
    const parent = 'a2fb4a1d1a96d312';
    const res = await httpGet(edge.outbound.frontend!, '/b3', { 'x-b3-traceid': traceId, 'x-b3-spanid': parent, 'x-b3-sampled': '1' });
    assert.equal(res.status, 200);
    const seenByBackend = res.json().headers as Record<string, string>;
    assert.equal(traceIdOf(seenByBackend.traceparent), traceId);
    assert.equal(seenByBackend['x-b3-traceid'], traceId);
    const [edgeClient, frontServer, frontClient, backServer] = await hops(receiver, traceId);
    assert.equal(edgeClient!.parentSpanId, parent);
    assert.equal(frontServer!.parentSpanId, edgeClient!.spanId);
    assert.equal(frontClient!.parentSpanId, frontServer!.spanId);
    assert.equal(backServer!.parentSpanId, frontClient!.spanId);
    assert.equal(seenByBackend['x-b3-spanid'], backServer!.spanId);

    const single = await httpGet(edge.outbound.frontend!, '/b3-single', { b3: `${'1'.repeat(16)}-${parent}-1` });
    assert.equal(single.status, 200);
    const singleTrace = '0'.repeat(16) + '1'.repeat(16); // a 64-bit B3 id, zero-padded for W3C
    const [edgeSingle] = await hops(receiver, singleTrace);
    assert.equal(edgeSingle!.parentSpanId, parent);
  });

  it('with sampling 0 no spans are exported, but an upstream sampled flag is honoured', async () => {
    await applyMeshConfig(cp, [edge, frontend, backend], { otlpEndpoint: receiver.endpoint, sampling: 0 });
    await receiver.clear();
    const unsampled = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const res = await httpGet(edge.outbound.frontend!, `/quiet/${i}`);
      assert.equal(res.status, 200);
      const tp = (res.json().headers as Record<string, string>).traceparent!;
      assert.match(tp, /-00$/, 'the root decided not to sample, downstream honours it');
      unsampled.add(traceIdOf(tp));
    }
    const sampledTrace = 'b'.repeat(32);
    const res = await httpGet(edge.outbound.frontend!, '/forced', { traceparent: `00-${sampledTrace}-${'c'.repeat(16)}-01` });
    assert.equal(res.status, 200);

    // SIGTERM flushes every proxy's queue before it exits: after that, nothing more can arrive.
    assert.deepEqual(await Promise.all([edge.stop(), frontend.stop(), backend.stop()]), [0, 0, 0]);
    const spans = await receiver.spans();
    assert.equal(spans.filter((s) => unsampled.has(s.traceId)).length, 0, 'no span of an unsampled trace');
    assert.equal(spans.filter((s) => s.traceId === sampledTrace).length, 4, 'the sampled flag from upstream is honoured');
    assert.equal(spans.length, 4);
  });
});
