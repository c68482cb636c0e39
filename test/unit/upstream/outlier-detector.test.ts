import { test, describe, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { EndpointState } from '../../../src/proxy/upstream/endpoint-state.js';
import { OutlierDetector, type Outcome, type OutlierSpec } from '../../../src/proxy/upstream/outlier-detector.js';

function endpoints(n: number): EndpointState[] {
  return Array.from({ length: n }, (_, i) => new EndpointState({ id: `e${i}`, address: `10.0.0.${i + 1}:8080`, labels: {}, draining: false }));
}

const BASE: OutlierSpec = { consecutive5xx: 3, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 };

describe('OutlierDetector', () => {
  // The detector reads the mocked Date, which moves in step with the mocked sweep timer.
  const now = (): number => Date.now();
  let detector: OutlierDetector | undefined;
  let events: string[] = [];

  beforeEach(() => {
    events = [];
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 0 });
  });
  afterEach(() => {
    detector?.stop();
    detector = undefined;
    mock.timers.reset();
  });

  function make(spec: OutlierSpec, eps: EndpointState[]): OutlierDetector {
    detector = new OutlierDetector(spec, {
      now,
      onEject: (ep, ms) => events.push(`eject ${ep.id} ${ms}`),
      onRestore: (ep) => events.push(`restore ${ep.id}`),
    });
    detector.setEndpoints(eps);
    return detector;
  }

  /** Node 20's mock tick moves Date to the end before firing timers, so step in 1s increments. */
  function advance(ms: number): void {
    for (let left = ms; left > 0; left -= 1000) mock.timers.tick(Math.min(1000, left));
  }

  function feed(d: OutlierDetector, ep: EndpointState, ...outcomes: Outcome[]): void {
    for (const o of outcomes) d.record(ep, o);
  }

  test('consecutive5xx ejects at the threshold; a success resets the count', () => {
    const eps = endpoints(4);
    const d = make(BASE, eps);
    const ep = eps[0]!;
    feed(d, ep, 'error-5xx', 'error-5xx', 'success', 'error-5xx', 'error-5xx');
    assert.equal(ep.ejections, 0);
    assert.ok(ep.available(now()));
    feed(d, ep, 'error-5xx');
    assert.equal(ep.ejections, 1);
    assert.equal(ep.ejectedUntil, 30_000);
    assert.equal(ep.available(now()), false);
    assert.deepEqual(events, ['eject e0 30000']);
  });

  test('consecutive5xx counts gateway errors too', () => {
    const eps = endpoints(4);
    const d = make(BASE, eps);
    feed(d, eps[0]!, 'gateway-error', 'error-5xx', 'gateway-error');
    assert.equal(eps[0]!.ejections, 1);
  });

  test('consecutiveGatewayErrors counts only gateway errors; any other outcome breaks the run', () => {
    const eps = endpoints(4);
    const d = make({ ...BASE, consecutive5xx: undefined, consecutiveGatewayErrors: 2 }, eps);
    const ep = eps[0]!;
    feed(d, ep, 'gateway-error', 'error-5xx', 'gateway-error', 'success', 'gateway-error', 'error-5xx', 'error-5xx');
    assert.equal(ep.ejections, 0);
    feed(d, ep, 'gateway-error', 'gateway-error');
    assert.equal(ep.ejections, 1);
    assert.deepEqual(events, ['eject e0 30000']);
  });

  test('both thresholds: whichever is reached first ejects', () => {
    const eps = endpoints(4);
    const d = make({ ...BASE, consecutive5xx: 5, consecutiveGatewayErrors: 2 }, eps);
    feed(d, eps[0]!, 'error-5xx', 'error-5xx', 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(eps[0]!.ejections, 1);
    feed(d, eps[1]!, 'gateway-error', 'gateway-error');
    assert.equal(eps[1]!.ejections, 1);
  });

  test('no threshold configured: never ejects, no timer', () => {
    const eps = endpoints(2);
    const d = make({ interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 }, eps);
    for (let i = 0; i < 100; i++) d.record(eps[0]!, 'gateway-error');
    assert.equal(eps[0]!.ejections, 0);
  });

  test('counters reset at ejection; outcomes while ejected are ignored', () => {
    const eps = endpoints(4);
    const d = make(BASE, eps);
    const ep = eps[0]!;
    feed(d, ep, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(ep.ejections, 1);
    feed(d, ep, 'error-5xx', 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(ep.ejections, 1);
    assert.equal(ep.ejectedUntil, 30_000);
  });

  test('the sweep restores endpoints whose ejection ended', () => {
    const eps = endpoints(4);
    const d = make(BASE, eps);
    feed(d, eps[0]!, 'error-5xx', 'error-5xx', 'error-5xx');
    advance(10_000);
    advance(10_000);
    assert.deepEqual(events, ['eject e0 30000']);
    advance(10_000); // t = 30s: ejection over, sweep restores
    assert.deepEqual(events, ['eject e0 30000', 'restore e0']);
    assert.ok(eps[0]!.available(now()));
  });

  test('ejection time grows with repeats and recovered endpoints are forgiven over time', () => {
    const eps = endpoints(4);
    const d = make(BASE, eps);
    const ep = eps[0]!;
    feed(d, ep, 'error-5xx', 'error-5xx', 'error-5xx');
    advance(30_000); // restored at the 30s sweep
    feed(d, ep, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(ep.ejections, 2);
    assert.equal(ep.ejectedUntil, now() + 60_000);
    advance(60_000); // restored at the 90s sweep
    feed(d, ep, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(ep.ejections, 3);
    assert.equal(ep.ejectedUntil, now() + 90_000);
    assert.deepEqual(events, ['eject e0 30000', 'restore e0', 'eject e0 60000', 'restore e0', 'eject e0 90000']);

    advance(90_000); // restored at 180s: no decrement at the restoring sweep
    assert.equal(ep.ejections, 3);
    advance(10_000);
    assert.equal(ep.ejections, 2);
    advance(10_000);
    assert.equal(ep.ejections, 1);
    advance(10_000);
    assert.equal(ep.ejections, 0);
    advance(10_000);
    assert.equal(ep.ejections, 0, 'never below zero');
    feed(d, ep, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(ep.ejectedUntil, now() + 30_000, 'back to the base ejection time');
  });

  test('an ejected endpoint is not forgiven while ejected', () => {
    const eps = endpoints(4);
    const d = make({ ...BASE, baseEjectionTime: '25s' }, eps);
    const ep = eps[0]!;
    ep.ejections = 2; // a repeat offender
    feed(d, ep, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(ep.ejections, 3);
    advance(10_000);
    advance(10_000);
    assert.equal(ep.ejections, 3);
  });

  test('ejection time is capped (Envoy max_ejection_time, 300s by default)', () => {
    const eps = endpoints(4);
    const d = make({ ...BASE, baseEjectionTime: '100s' }, eps);
    const ep = eps[0]!;
    ep.ejections = 5;
    feed(d, ep, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(ep.ejectedUntil, 300_000);
    assert.deepEqual(events, ['eject e0 300000']);
  });

  test('maxEjectionPercent is respected', () => {
    const eps = endpoints(4);
    const d = make({ ...BASE, maxEjectionPercent: 50 }, eps);
    for (const ep of eps) feed(d, ep, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.deepEqual(eps.map((ep) => ep.ejections), [1, 1, 0, 0]);
    assert.equal(d.ejectedCount(), 2);
    // Once one is restored, another may be ejected.
    advance(30_000);
    feed(d, eps[2]!, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(eps[2]!.ejections, 1);
  });

  test('a low maxEjectionPercent still allows ejecting one endpoint of 2+', () => {
    const eps = endpoints(4);
    const d = make({ ...BASE, maxEjectionPercent: 10 }, eps);
    for (const ep of eps) feed(d, ep, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.deepEqual(eps.map((ep) => ep.ejections), [1, 0, 0, 0]);
  });

  test('maxEjectionPercent 0 ejects nothing; a lone endpoint is kept below 100%', () => {
    const eps = endpoints(3);
    const d = make({ ...BASE, maxEjectionPercent: 0 }, eps);
    for (const ep of eps) feed(d, ep, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.deepEqual(eps.map((ep) => ep.ejections), [0, 0, 0]);
    d.stop();

    const [lone] = endpoints(1);
    const d2 = make({ ...BASE, maxEjectionPercent: 50 }, [lone!]);
    feed(d2, lone!, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(lone!.ejections, 0);
    d2.stop();

    const [solo] = endpoints(1);
    const d3 = make({ ...BASE, maxEjectionPercent: 100 }, [solo!]);
    feed(d3, solo!, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(solo!.ejections, 1);
  });

  test('setEndpoints: removed endpoints are ignored, an inherited ejection is restored by the sweep', () => {
    const eps = endpoints(3);
    eps[2]!.ejectedUntil = 15_000;
    eps[2]!.ejections = 1;
    const d = make(BASE, eps.slice(1));
    feed(d, eps[0]!, 'error-5xx', 'error-5xx', 'error-5xx');
    assert.equal(eps[0]!.ejections, 0, 'unknown endpoint');
    advance(10_000);
    assert.deepEqual(events, []);
    advance(10_000);
    assert.deepEqual(events, ['restore e2']);
  });

  test('stop ends the sweep', () => {
    const eps = endpoints(4);
    const d = make(BASE, eps);
    feed(d, eps[0]!, 'error-5xx', 'error-5xx', 'error-5xx');
    d.stop();
    advance(100_000);
    assert.deepEqual(events, ['eject e0 30000']);
  });
});
