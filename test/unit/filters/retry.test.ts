import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { MeshError } from '../../../src/api/errors.js';
import { RetryFilter, retrySettings, type RetryDeps } from '../../../src/proxy/filters/retry.js';
import { RetryBudget } from '../../../src/proxy/filters/retry-budget.js';
import { CircuitBreaker } from '../../../src/proxy/filters/circuit-breaker.js';
import { bufferBody } from '../../../src/proxy/http/replayable-body.js';
import type { MeshRequest, MeshResponse } from '../../../src/proxy/pipeline/types.js';
import { meshRequest, readAll, response } from './helpers.js';

const noSleep = async () => {};

function filter(retry: Record<string, unknown>, deps: Partial<RetryDeps> = {}): RetryFilter {
  const settings = retrySettings({ attempts: 2, on: ['connect-failure', 'reset', 'gateway-error'], ...retry } as never);
  return new RetryFilter(settings, { destination: 'backend', budget: new RetryBudget(20, 1000, () => 0), sleep: noSleep, ...deps });
}

/** A `next` answering the given outcomes in order (the last one repeats), recording bodies sent. */
function upstream(outcomes: Array<number | MeshError>) {
  const bodies: string[] = [];
  const responses: MeshResponse[] = [];
  let calls = 0;
  const next = async (req: MeshRequest): Promise<MeshResponse> => {
    bodies.push(await readAll(req.body));
    const o = outcomes[Math.min(calls++, outcomes.length - 1)]!;
    if (o instanceof MeshError) throw o;
    const r = response(o, `status ${o}`);
    responses.push(r);
    return r;
  };
  return { next, bodies, responses, calls: () => calls };
}

describe('retry filter', () => {
  it('retries a GET after a 503 and records the attempts; the discarded body is destroyed', async () => {
    const up = upstream([503, 200]);
    const req = meshRequest();
    const res = await filter({}).handle(req, up.next);
    assert.equal(res.status, 200);
    assert.equal(up.calls(), 2);
    assert.equal(req.attrs.attempts, 2);
    assert.equal(up.responses[0]!.body!.destroyed, true);
  });

  it('stops after 1 + attempts tries and returns the last answer', async () => {
    const up = upstream([503]);
    const req = meshRequest();
    const res = await filter({ attempts: 3 }).handle(req, up.next);
    assert.equal(res.status, 503);
    assert.equal(up.calls(), 4);
    assert.equal(req.attrs.attempts, 4);
  });

  it('does not retry a POST by default', async () => {
    const up = upstream([503, 200]);
    const req = meshRequest({ method: 'POST', bodyText: 'payload' });
    const res = await filter({}).handle(req, up.next);
    assert.equal(res.status, 503);
    assert.equal(up.calls(), 1);
    assert.deepEqual(up.bodies, ['payload']);
  });

  it('replays a buffered PUT body on each try', async () => {
    const up = upstream([502, 504, 200]);
    const res = await filter({}).handle(meshRequest({ method: 'PUT', bodyText: 'hello' }), up.next);
    assert.equal(res.status, 200);
    assert.deepEqual(up.bodies, ['hello', 'hello', 'hello']);
  });

  it('streams a body over the replay limit once and does not retry it', async () => {
    const up = upstream([503, 200]);
    const big = 'x'.repeat(100);
    const res = await filter({}, { bodyLimit: 10 }).handle(meshRequest({ method: 'PUT', body: Readable.from([Buffer.from(big.slice(0, 8)), Buffer.from(big.slice(8, 50)), Buffer.from(big.slice(50))], { objectMode: false }) }), up.next);
    assert.equal(res.status, 503);
    assert.equal(up.calls(), 1);
    assert.equal(up.bodies[0], big);
  });

  it('streams a body whose content-length exceeds the limit without reading it first', async () => {
    const r = await bufferBody(Readable.from([Buffer.from('abc')], { objectMode: false }), { 'content-length': '70000' });
    assert.equal(r.replayable, false);
  });

  it('honours the conditions: connect-failure, reset, 5xx, retriable-status-codes', async () => {
    const connect = upstream([new MeshError('UPSTREAM_CONNECT_FAILED'), 200]);
    assert.equal((await filter({ on: ['connect-failure'] }).handle(meshRequest(), connect.next)).status, 200);
    const reset = upstream([new MeshError('UPSTREAM_RESET'), 200]);
    assert.equal((await filter({ on: ['reset'] }).handle(meshRequest(), reset.next)).status, 200);
    const resetNotAllowed = upstream([new MeshError('UPSTREAM_RESET'), 200]);
    await assert.rejects(filter({ on: ['connect-failure'] }).handle(meshRequest(), resetNotAllowed.next), { code: 'UPSTREAM_RESET' });
    const s500 = upstream([500, 200]);
    assert.equal((await filter({ on: ['gateway-error'] }).handle(meshRequest(), s500.next)).status, 500, '500 is not a gateway error');
    const s500b = upstream([500, 200]);
    assert.equal((await filter({ on: ['5xx'] }).handle(meshRequest(), s500b.next)).status, 200);
    const s409 = upstream([409, 200]);
    assert.equal((await filter({ on: ['retriable-status-codes'], codes: [409] }).handle(meshRequest(), s409.next)).status, 200);
  });

  it('backs off exponentially with full jitter from the base backoff, capped at 10x', async () => {
    const slept: number[] = [];
    const up = upstream([503]);
    await filter({ attempts: 6, backoff: '10ms' }, { random: () => 0.999999, sleep: async (ms) => { slept.push(Math.round(ms)); } }).handle(meshRequest(), up.next);
    assert.deepEqual(slept, [10, 20, 40, 80, 100, 100]);
    const half: number[] = [];
    await filter({ attempts: 2 }, { random: () => 0.5, sleep: async (ms) => { half.push(ms); } }).handle(meshRequest(), upstream([503]).next);
    assert.deepEqual(half, [12.5, 25], 'default base 25ms, jittered');
  });

  it('times out a try after perTryTimeout with 504 UPSTREAM_TIMEOUT, cancels it, and retries', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const signals: AbortSignal[] = [];
      let calls = 0;
      const next = (req: MeshRequest): Promise<MeshResponse> => {
        signals.push(req.signal);
        calls++;
        return calls === 1 ? new Promise<MeshResponse>(() => {}) : Promise.resolve(response(200));
      };
      const pending = filter({ perTryTimeout: '100ms' }).handle(meshRequest(), next);
      for (let i = 0; i < 100 && calls < 1; i++) await new Promise((r) => setImmediate(r));
      mock.timers.tick(100);
      const res = await pending;
      assert.equal(res.status, 200);
      assert.equal(calls, 2);
      assert.equal(signals[0]!.aborted, true, 'the timed-out try was cancelled');

      let stuckCalls = 0;
      const stuck = filter({ perTryTimeout: '50ms', attempts: 0 }).handle(meshRequest(), () => { stuckCalls++; return new Promise<MeshResponse>(() => {}); });
      for (let i = 0; i < 100 && stuckCalls < 1; i++) await new Promise((r) => setImmediate(r));
      mock.timers.tick(50);
      await assert.rejects(stuck, (err: MeshError) => err.code === 'UPSTREAM_TIMEOUT' && err.status === 504);
    } finally {
      mock.timers.reset();
    }
  });

  it('consults circuitBreaker.maxRetries for concurrent retries', async () => {
    const breaker = new CircuitBreaker('backend', { maxRetries: 0 });
    const up = upstream([503, 200]);
    assert.equal((await filter({}, { breaker }).handle(meshRequest(), up.next)).status, 503);
    assert.equal(up.calls(), 1);
    const open = new CircuitBreaker('backend', { maxRetries: 1 });
    const up2 = upstream([503, 200]);
    assert.equal((await filter({}, { breaker: open }).handle(meshRequest(), up2.next)).status, 200);
    assert.equal(open.retriesInflight, 0, 'the retry slot is released');
  });

  it('keeps retries within the budget when the backend fails every request', async () => {
    let now = 0;
    const budget = new RetryBudget(20, 10, () => now);
    const f = filter({ attempts: 3 }, { budget });
    let upstreamCalls = 0;
    const requests = 500;
    // 500 requests spread over 5 seconds, all failing.
    for (let i = 0; i < requests; i++) {
      now = i * 10;
      const up = upstream([503]);
      await f.handle(meshRequest(), up.next);
      upstreamCalls += up.calls();
    }
    const retries = upstreamCalls - requests;
    assert.ok(retries <= requests * 0.2 + 10 * 6, `retries ${retries} within budget`);
    assert.ok(retries >= requests * 0.15, `budget still allows some retries (${retries})`);
  });
});

describe('retry budget', () => {
  it('allows minRetriesPerSecond, then percent of requests, over a sliding second', () => {
    let now = 0;
    const b = new RetryBudget(20, 10, () => now);
    let granted = 0;
    for (let i = 0; i < 30; i++) if (b.tryWithdraw()) granted++;
    assert.equal(granted, 10, 'the floor with no requests');
    for (let i = 0; i < 100; i++) b.recordRequest();
    granted = 0;
    for (let i = 0; i < 30; i++) if (b.tryWithdraw()) granted++;
    assert.equal(granted, 10, '20% of 100 = 20 in total');
    now = 1100; // the window has moved past all of it
    granted = 0;
    for (let i = 0; i < 30; i++) if (b.tryWithdraw()) granted++;
    assert.equal(granted, 10);
  });
});
