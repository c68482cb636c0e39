import { test, describe, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { EndpointState } from '../../../src/proxy/upstream/endpoint-state.js';
import { HealthChecker, type HealthCheckSpec, type Probe } from '../../../src/proxy/upstream/health-checker.js';

function endpoint(i: number): EndpointState {
  return new EndpointState({ id: `e${i}`, address: `10.0.0.${i + 1}:8080`, labels: {}, draining: false });
}

/** Lets resolved promises run their continuations (setImmediate is not mocked). */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
};

type Result = boolean | 'hang' | 'reject' | 'throw';

function scriptedProbe(initial: Result = true) {
  const results = new Map<EndpointState, Result>();
  const calls: { ep: string; timeoutMs: number }[] = [];
  const probe: Probe = (ep, timeoutMs) => {
    calls.push({ ep: ep.id, timeoutMs });
    const r = results.get(ep) ?? initial;
    if (r === 'hang') return new Promise<boolean>(() => {});
    if (r === 'reject') return Promise.reject(new Error('connect ECONNREFUSED'));
    if (r === 'throw') throw new Error('sync failure');
    return Promise.resolve(r);
  };
  return { probe, calls, results, callsFor: (ep: EndpointState) => calls.filter((c) => c.ep === ep.id).length };
}

const SPEC: HealthCheckSpec = { tcp: {}, interval: '1s', timeout: '500ms', unhealthyThreshold: 3, healthyThreshold: 2 };

describe('HealthChecker', () => {
  let checker: HealthChecker | undefined;
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] }));
  afterEach(() => {
    checker?.stop();
    checker = undefined;
    mock.timers.reset();
  });

  async function tick(ms: number): Promise<void> {
    mock.timers.tick(ms);
    await flush();
  }

  test('probes right away, then every interval after the previous probe completes', async () => {
    const p = scriptedProbe(true);
    checker = new HealthChecker(SPEC, p.probe);
    const ep = endpoint(0);
    checker.setEndpoints([ep]);
    assert.equal(p.calls.length, 1);
    assert.equal(p.calls[0]!.timeoutMs, 500);
    await flush();
    await tick(999);
    assert.equal(p.calls.length, 1);
    await tick(1);
    assert.equal(p.calls.length, 2);
    await tick(1000);
    assert.equal(p.calls.length, 3);
  });

  test('unhealthy after unhealthyThreshold failures, healthy again after healthyThreshold successes', async () => {
    const p = scriptedProbe(false);
    const changes: [string, boolean][] = [];
    checker = new HealthChecker(SPEC, p.probe, { onChange: (ep, healthy) => changes.push([ep.id, healthy]) });
    const ep = endpoint(0);
    checker.setEndpoints([ep]);
    await flush();
    assert.equal(ep.healthy, true, 'starts healthy (optimistic)');
    await tick(1000);
    assert.equal(ep.healthy, true);
    await tick(1000);
    assert.equal(ep.healthy, false);
    assert.deepEqual(changes, [['e0', false]]);
    await tick(1000); // further failures: no new change
    assert.deepEqual(changes, [['e0', false]]);

    p.results.set(ep, true);
    await tick(1000);
    assert.equal(ep.healthy, false, 'one success is not enough');
    await tick(1000);
    assert.equal(ep.healthy, true);
    assert.deepEqual(changes, [['e0', false], ['e0', true]]);
  });

  test('a success interrupts a run of failures', async () => {
    const p = scriptedProbe(false);
    checker = new HealthChecker(SPEC, p.probe);
    const ep = endpoint(0);
    checker.setEndpoints([ep]);
    await flush();
    await tick(1000); // 2 failures
    p.results.set(ep, true);
    await tick(1000); // success resets
    p.results.set(ep, false);
    await tick(1000);
    await tick(1000); // 2 failures again
    assert.equal(ep.healthy, true);
    await tick(1000);
    assert.equal(ep.healthy, false);
  });

  test('a probe exceeding the timeout counts as a failure', async () => {
    const p = scriptedProbe('hang');
    checker = new HealthChecker({ ...SPEC, unhealthyThreshold: 1 }, p.probe);
    const ep = endpoint(0);
    checker.setEndpoints([ep]);
    await tick(499);
    assert.equal(ep.healthy, true);
    await tick(1);
    assert.equal(ep.healthy, false);
    // The next probe comes `interval` after the timed-out one.
    assert.equal(p.calls.length, 1);
    await tick(1000);
    assert.equal(p.calls.length, 2);
  });

  test('a rejected or throwing probe counts as a failure', async () => {
    const p = scriptedProbe();
    checker = new HealthChecker({ ...SPEC, unhealthyThreshold: 1 }, p.probe);
    const a = endpoint(0);
    const b = endpoint(1);
    p.results.set(a, 'reject');
    p.results.set(b, 'throw');
    checker.setEndpoints([a, b]);
    await flush();
    assert.equal(a.healthy, false);
    assert.equal(b.healthy, false);
  });

  test('a slow probe delays the next one (no overlap)', async () => {
    let resolveProbe: ((ok: boolean) => void) | undefined;
    let calls = 0;
    const probe: Probe = () => {
      calls++;
      return new Promise<boolean>((r) => { resolveProbe = r; });
    };
    checker = new HealthChecker({ ...SPEC, timeout: '5s' }, probe);
    checker.setEndpoints([endpoint(0)]);
    await tick(3000);
    assert.equal(calls, 1);
    resolveProbe!(true);
    await flush();
    await tick(999);
    assert.equal(calls, 1);
    await tick(1);
    assert.equal(calls, 2);
  });

  test('jitter is added to the interval', async () => {
    const p = scriptedProbe(true);
    checker = new HealthChecker(SPEC, p.probe, { jitter: () => 250 });
    checker.setEndpoints([endpoint(0)]);
    await flush();
    await tick(1249);
    assert.equal(p.calls.length, 1);
    await tick(1);
    assert.equal(p.calls.length, 2);
  });

  test('no probe after stop, and a result arriving after stop is ignored', async () => {
    const p = scriptedProbe('hang');
    const changes: boolean[] = [];
    checker = new HealthChecker({ ...SPEC, unhealthyThreshold: 1 }, p.probe, { onChange: (_, h) => changes.push(h) });
    const ep = endpoint(0);
    checker.setEndpoints([ep]);
    checker.stop();
    await tick(60_000);
    assert.equal(p.calls.length, 1);
    assert.equal(ep.healthy, true);
    assert.deepEqual(changes, []);
    checker.setEndpoints([endpoint(1)]);
    assert.equal(p.calls.length, 1, 'setEndpoints after stop does nothing');
  });

  test('removed endpoints are no longer probed; known ones keep their schedule and state', async () => {
    const p = scriptedProbe(true);
    checker = new HealthChecker(SPEC, p.probe);
    const [a, b, c] = [endpoint(0), endpoint(1), endpoint(2)];
    p.results.set(b, false);
    checker.setEndpoints([a, b]);
    await flush();
    assert.equal(p.callsFor(a), 1);
    assert.equal(p.callsFor(b), 1);
    await tick(500);
    checker.setEndpoints([b, c]);
    assert.equal(p.callsFor(b), 1, 'a known endpoint is not re-probed at once');
    assert.equal(p.callsFor(c), 1, 'a new endpoint is probed at once');
    await flush();
    await tick(500);
    assert.equal(p.callsFor(b), 2, 'b keeps its original schedule');
    await tick(500); // c's second probe; b has 2 failures now
    await tick(500);
    assert.equal(p.callsFor(b), 3);
    assert.equal(b.healthy, false, 'b kept its failure count across setEndpoints');
    await tick(10_000);
    assert.equal(p.callsFor(a), 1, 'a removed endpoint is never probed again');
  });

  test('an endpoint already unhealthy needs healthyThreshold successes', async () => {
    const p = scriptedProbe(true);
    checker = new HealthChecker(SPEC, p.probe);
    const ep = endpoint(0);
    ep.healthy = false;
    checker.setEndpoints([ep]);
    await flush();
    assert.equal(ep.healthy, false);
    await tick(1000);
    assert.equal(ep.healthy, true);
  });
});
