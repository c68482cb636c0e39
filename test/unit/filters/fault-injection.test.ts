import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { MeshError } from '../../../src/api/errors.js';
import type { HTTPRouteRule } from '../../../src/api/schema/resources.js';
import { errorResponse } from '../../../src/proxy/http/error-response.js';
import { createFaultInjectionFactory, FaultInjection, faultInjectionFactory } from '../../../src/proxy/filters/fault-injection.js';
import type { BuildContext } from '../../../src/proxy/pipeline/factory.js';
import type { MeshRequest, MeshResponse } from '../../../src/proxy/pipeline/types.js';

const ctx = { snapshot: { clusters: {} }, services: {}, self: 'frontend' } as unknown as BuildContext;

function request(signal = new AbortController().signal): MeshRequest {
  return {
    direction: 'outbound', method: 'GET', path: '/', authority: 'backend', headers: {}, body: Readable.from([]),
    protocol: 'http', grpc: false, source: {}, destination: 'backend', requestId: 'r1', startedAt: performance.now(),
    signal, attrs: {},
  };
}
const ok = async (): Promise<MeshResponse> => ({ status: 200, headers: {}, body: null });
const fault = (faultInjection: object): HTTPRouteRule => ({ filters: [{ type: 'FaultInjection', faultInjection } as never] });
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('fault injection', () => {
  test('returns null without a fault, or when every percent is 0', () => {
    assert.equal(faultInjectionFactory.build(ctx, {}, 'r', 'backend'), null);
    assert.equal(faultInjectionFactory.build(ctx, fault({ abort: { status: 500, percent: 0 }, delay: { fixed: '1s', percent: 0 } }), 'r', 'backend'), null);
  });

  test('a 100% abort answers FAULT_INJECTED with the configured status, without calling upstream', async () => {
    const filter = faultInjectionFactory.build(ctx, fault({ abort: { status: 418, percent: 100 } }), 'r', 'backend')!;
    let called = false;
    await assert.rejects(filter.handle(request(), async () => { called = true; return ok(); }), (err: unknown) => {
      assert.ok(err instanceof MeshError);
      assert.equal(err.code, 'FAULT_INJECTED');
      assert.equal(err.status, 418);
      return true;
    });
    assert.equal(called, false);
  });

  test('percent sampling uses the injected random source', async () => {
    let next = 0;
    const values = [0.49, 0.5, 0.01, 0.99];
    const factory = createFaultInjectionFactory(() => values[next++]!);
    const filter = factory.build(ctx, fault({ abort: { status: 503, percent: 50 } }), 'r', 'backend')!;
    const outcomes: string[] = [];
    for (let i = 0; i < values.length; i++) {
      outcomes.push(await filter.handle(request(), ok).then(() => 'pass', (e: MeshError) => e.code));
    }
    assert.deepEqual(outcomes, ['FAULT_INJECTED', 'pass', 'FAULT_INJECTED', 'pass']);
  });

  test('a fixed delay holds the request for exactly that long', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const filter = faultInjectionFactory.build(ctx, fault({ delay: { fixed: '1s', percent: 100 } }), 'r', 'backend')!;
    let called = false;
    const done = filter.handle(request(), async () => { called = true; return ok(); });
    await flush();
    t.mock.timers.tick(999);
    await flush();
    assert.equal(called, false, 'not before the delay');
    t.mock.timers.tick(1);
    const res = await done;
    assert.equal(called, true);
    assert.equal(res.status, 200);
  });

  test('the delay stops as soon as the client goes away (or the deadline aborts the signal)', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const filter = new FaultInjection({ delay: { ms: 60_000, percent: 100 } });
    const controller = new AbortController();
    let called = false;
    const done = filter.handle(request(controller.signal), async () => { called = true; return ok(); });
    controller.abort();
    await assert.rejects(done, (err: MeshError) => err.code === 'UPSTREAM_RESET');
    t.mock.timers.tick(60_000);
    await flush();
    assert.equal(called, false, 'upstream never called');
  });

  test('delay then abort, as configured together', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const filter = new FaultInjection({ delay: { ms: 100, percent: 100 }, abort: { status: 500, percent: 100 } });
    let settled = false;
    const done = filter.handle(request(), ok).finally(() => { settled = true; });
    done.catch(() => {});
    await flush();
    assert.equal(settled, false);
    t.mock.timers.tick(100);
    await assert.rejects(done, (err: MeshError) => err.code === 'FAULT_INJECTED' && err.status === 500);
  });

  test('for gRPC the injected status maps to a grpc-status', () => {
    const res = errorResponse(new MeshError('FAULT_INJECTED', 'x', { status: 404 }), true);
    assert.equal(res.headers['grpc-status'], '12');
    assert.equal(res.headers['x-trellis-error'], 'FAULT_INJECTED');
  });
});
