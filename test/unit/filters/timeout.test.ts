import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { MeshError } from '../../../src/api/errors.js';
import type { HTTPRouteRule } from '../../../src/api/schema/resources.js';
import {
  backendRequestTimeoutFactory, deadlineHeaders, formatGrpcTimeout, inboundDeadline, inboundDeadlineFactory,
  parseGrpcTimeout, requestTimeoutFactory,
} from '../../../src/proxy/filters/timeout.js';
import type { BuildContext } from '../../../src/proxy/pipeline/factory.js';
import type { MeshRequest, MeshResponse, Next } from '../../../src/proxy/pipeline/types.js';

function context(clusterTimeout?: string): BuildContext {
  const trafficPolicy = clusterTimeout ? { targetRef: { name: 'backend' }, timeouts: { request: clusterTimeout } } : undefined;
  return { snapshot: { clusters: { backend: { name: 'backend', protocol: 'http', endpoints: [], trafficPolicy } } }, services: {}, self: 'frontend' } as unknown as BuildContext;
}

function request(opts: { signal?: AbortSignal; deadline?: number; grpc?: boolean; direction?: 'inbound' | 'outbound'; headers?: MeshRequest['headers'] } = {}): MeshRequest {
  return {
    direction: opts.direction ?? 'outbound', method: 'GET', path: '/', authority: 'backend', headers: opts.headers ?? {},
    body: Readable.from([]), protocol: opts.grpc ? 'grpc' : 'http', grpc: opts.grpc ?? false, source: {}, destination: 'backend',
    requestId: 'r1', startedAt: performance.now(), deadline: opts.deadline, signal: opts.signal ?? new AbortController().signal, attrs: {},
  };
}

/** An upstream that never answers, but records the request it got (and whether its signal aborted). */
function hangingUpstream(): { next: Next; seen: () => MeshRequest | undefined } {
  let seen: MeshRequest | undefined;
  return {
    next: (req) => { seen = req; return new Promise<MeshResponse>(() => {}); },
    seen: () => seen,
  };
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));
const isTimeout = (err: unknown) => err instanceof MeshError && err.code === 'UPSTREAM_TIMEOUT' && err.status === 504;

describe('request timeout', () => {
  test('no timeout configured → no filter', () => {
    assert.equal(requestTimeoutFactory.build(context(), {}, 'r', 'backend'), null);
    assert.equal(backendRequestTimeoutFactory.build(context(), {}, 'r', 'backend'), null);
    assert.equal(requestTimeoutFactory.build(context(), { timeouts: { request: '0s' } }, 'r', 'backend'), null);
  });

  test('answers 504 UPSTREAM_TIMEOUT at the deadline and aborts the upstream attempt', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const filter = requestTimeoutFactory.build(context(), { timeouts: { request: '200ms' } }, 'r', 'backend')!;
    const downstream = new AbortController();
    const upstream = hangingUpstream();
    const done = filter.handle(request({ signal: downstream.signal }), upstream.next);
    done.catch(() => {});
    const attempt = upstream.seen()!;
    assert.ok(attempt.deadline !== undefined && attempt.deadline - performance.now() <= 200);
    t.mock.timers.tick(199);
    await flush();
    assert.equal(attempt.signal.aborted, false);
    t.mock.timers.tick(1);
    await assert.rejects(done, isTimeout);
    assert.equal(attempt.signal.aborted, true, 'the upstream stream is told to stop');
    assert.equal(downstream.signal.aborted, false, 'the downstream signal is not touched');
  });

  test('a response in time passes through and nothing fires later', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const filter = requestTimeoutFactory.build(context(), { timeouts: { request: '1s' } }, 'r', 'backend')!;
    let attempt: MeshRequest | undefined;
    const res = await filter.handle(request(), async (req) => { attempt = req; return { status: 201, headers: {}, body: null }; });
    assert.equal(res.status, 201);
    t.mock.timers.tick(5000);
    assert.equal(attempt!.signal.aborted, false);
  });

  test('the downstream going away aborts the attempt too', async () => {
    const filter = requestTimeoutFactory.build(context(), { timeouts: { request: '10s' } }, 'r', 'backend')!;
    const downstream = new AbortController();
    const upstream = hangingUpstream();
    const done = filter.handle(request({ signal: downstream.signal }), (req) => {
      upstream.next(req);
      return new Promise<MeshResponse>((_, reject) => req.signal.addEventListener('abort', () => reject(new MeshError('UPSTREAM_RESET'))));
    });
    downstream.abort();
    await assert.rejects(done, (err: MeshError) => err.code === 'UPSTREAM_RESET');
    assert.equal(upstream.seen()!.signal.aborted, true);
  });

  test('an earlier deadline already on the request wins', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const filter = requestTimeoutFactory.build(context(), { timeouts: { request: '10s' } }, 'r', 'backend')!;
    const deadline = performance.now() + 50;
    const upstream = hangingUpstream();
    const done = filter.handle(request({ deadline }), upstream.next);
    done.catch(() => {});
    assert.equal(upstream.seen()!.deadline, deadline);
    t.mock.timers.tick(50);
    await assert.rejects(done, isTimeout);
  });

  test('falls back to TrafficPolicy.timeouts.request; the rule wins when it has one', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const fromCluster = requestTimeoutFactory.build(context('300ms'), {}, 'r', 'backend')!;
    assert.ok(fromCluster);
    const up1 = hangingUpstream();
    const d1 = fromCluster.handle(request(), up1.next);
    d1.catch(() => {});
    const remaining = up1.seen()!.deadline! - performance.now();
    assert.ok(remaining > 250 && remaining <= 300, `cluster timeout used (${remaining})`);
    t.mock.timers.tick(300);
    await assert.rejects(d1, isTimeout);

    const fromRule = requestTimeoutFactory.build(context('300ms'), { timeouts: { request: '2s' } }, 'r', 'backend')!;
    const up2 = hangingUpstream();
    const d2 = fromRule.handle(request(), up2.next);
    d2.catch(() => {});
    assert.ok(up2.seen()!.deadline! - performance.now() > 1900);
    t.mock.timers.tick(2000);
    await assert.rejects(d2, isTimeout);
  });

  test('backendRequest bounds each attempt and may not exceed request', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const rule: HTTPRouteRule = { timeouts: { request: '1s', backendRequest: '100ms' } };
    const perTry = backendRequestTimeoutFactory.build(context(), rule, 'r', 'backend')!;
    for (let i = 0; i < 2; i++) {
      const up = hangingUpstream();
      const d = perTry.handle(request(), up.next);
      d.catch(() => {});
      t.mock.timers.tick(100);
      await assert.rejects(d, isTimeout);
      assert.equal(up.seen()!.signal.aborted, true);
    }
    assert.throws(() => backendRequestTimeoutFactory.build(context(), { timeouts: { request: '1s', backendRequest: '2s' } }, 'r', 'backend'), /must not exceed/);
  });
});

describe('deadline propagation', () => {
  test('outbound HTTP hops carry the remaining ms in x-trellis-deadline', () => {
    const now = 1000;
    assert.deepEqual(deadlineHeaders(request({ deadline: now + 1234.7 }), now), { 'x-trellis-deadline': '1234' });
    assert.equal(deadlineHeaders(request(), now), undefined, 'no deadline, no header');
    assert.equal(deadlineHeaders(request({ deadline: now + 50, direction: 'inbound' }), now), undefined, 'never towards the app');
    assert.deepEqual(deadlineHeaders(request({ deadline: now - 5 }), now), { 'x-trellis-deadline': '1' });
  });

  test('gRPC hops also get grpc-timeout when it is smaller than the client\'s', () => {
    const now = 0;
    assert.deepEqual(deadlineHeaders(request({ deadline: 1234, grpc: true }), now), { 'x-trellis-deadline': '1234', 'grpc-timeout': '1234m' });
    assert.deepEqual(deadlineHeaders(request({ deadline: 1234, grpc: true, headers: { 'grpc-timeout': '5S' } }), now)!['grpc-timeout'], '1234m');
    assert.equal(deadlineHeaders(request({ deadline: 1234, grpc: true, headers: { 'grpc-timeout': '100m' } }), now)!['grpc-timeout'], undefined);
    assert.equal(parseGrpcTimeout('2S'), 2000);
    assert.equal(parseGrpcTimeout('1H'), 3_600_000);
    assert.equal(parseGrpcTimeout('nonsense'), undefined);
    assert.equal(formatGrpcTimeout(0.2), '1m');
  });

  test('the inbound side turns x-trellis-deadline into an absolute deadline; junk is ignored', () => {
    assert.equal(inboundDeadline({ 'x-trellis-deadline': '250' }, 1000), 1250);
    assert.equal(inboundDeadline({ 'x-trellis-deadline': '-5' }, 1000), undefined);
    assert.equal(inboundDeadline({ 'x-trellis-deadline': '1e9' }, 1000), undefined);
    assert.equal(inboundDeadline({}, 1000), undefined);
  });

  test('the inbound deadline filter stops waiting for the app at the caller\'s deadline', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const filter = inboundDeadlineFactory.build(context(), 'backend', undefined)!;
    // Without a deadline the request goes through untouched.
    const plain = request({ direction: 'inbound' });
    let passed: MeshRequest | undefined;
    await filter.handle(plain, async (req) => { passed = req; return { status: 200, headers: {}, body: null }; });
    assert.equal(passed, plain);

    const up = hangingUpstream();
    const done = filter.handle(request({ direction: 'inbound', deadline: performance.now() + 80 }), up.next);
    done.catch(() => {});
    t.mock.timers.tick(80);
    await assert.rejects(done, isTimeout);
    assert.equal(up.seen()!.signal.aborted, true, 'the app request is aborted');
  });
});
