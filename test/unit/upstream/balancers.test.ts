import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { EndpointState } from '../../../src/proxy/upstream/endpoint-state.js';
import { BALANCERS, createBalancer, hash32 } from '../../../src/proxy/upstream/balancers/index.js';
import type { Balancer, PickContext } from '../../../src/proxy/upstream/balancer.js';

/** Deterministic PRNG (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function endpoints(n: number): EndpointState[] {
  return Array.from({ length: n }, (_, i) => new EndpointState({ id: `e${i}`, address: `10.0.0.${i + 1}:8080`, labels: {}, draining: false }));
}

const NOW = 1_000;
const ctx = (extra: Partial<PickContext> = {}): PickContext => ({ now: NOW, ...extra });

function counts(b: Balancer, eps: readonly EndpointState[], picks: number, c: PickContext = ctx()): number[] {
  const out = eps.map(() => 0);
  for (let i = 0; i < picks; i++) {
    const ep = b.pick(c);
    assert.ok(ep, 'expected a pick');
    out[eps.indexOf(ep)]!++;
  }
  return out;
}

const TYPES = Object.keys(BALANCERS);

describe('createBalancer', () => {
  test('defaults to RoundRobin and builds every registered type', () => {
    assert.equal(createBalancer(undefined, endpoints(2)).type, 'RoundRobin');
    for (const t of TYPES) assert.equal(createBalancer(t, endpoints(2)).type, t);
  });

  test('rejects an unknown type', () => {
    assert.throws(() => createBalancer('Fastest', endpoints(2)), /unknown load balancer type "Fastest"/);
  });
});

describe('common behaviour of every balancer', () => {
  for (const type of TYPES) {
    test(`${type}: undefined when nothing is available`, () => {
      assert.equal(createBalancer(type, []).pick(ctx({ hashKey: 'k' })), undefined);
      assert.equal(createBalancer(type, []).pick(ctx()), undefined);
      const eps = endpoints(3);
      eps[0]!.healthy = false;
      eps[1]!.draining = true;
      eps[2]!.ejectedUntil = NOW + 1;
      const b = createBalancer(type, eps, { random: seeded(1) });
      assert.equal(b.pick(ctx()), undefined);
      assert.equal(b.pick(ctx({ hashKey: 'user-1' })), undefined);
      eps[2]!.ejectedUntil = NOW; // ejection over at `now`
      assert.equal(b.pick(ctx()), eps[2]);
    });

    test(`${type}: only available endpoints are picked`, () => {
      const eps = endpoints(5);
      eps[1]!.healthy = false;
      eps[3]!.ejectedUntil = NOW + 10_000;
      const b = createBalancer(type, eps, { random: seeded(2) });
      for (let i = 0; i < 500; i++) {
        const ep = b.pick(ctx({ hashKey: i % 2 ? `key-${i}` : undefined }))!;
        assert.ok(ep !== eps[1] && ep !== eps[3], `${type} picked unavailable ${ep.id}`);
      }
    });

    test(`${type}: exclude is honoured, with fallback to excluded endpoints`, () => {
      const eps = endpoints(3);
      const b = createBalancer(type, eps, { random: seeded(3) });
      const exclude = new Set([eps[0]!, eps[1]!]);
      for (let i = 0; i < 200; i++) assert.equal(b.pick(ctx({ exclude, hashKey: i % 2 ? `k${i}` : undefined })), eps[2]);
      // Everything else unavailable: an excluded endpoint is better than nothing.
      eps[2]!.healthy = false;
      for (let i = 0; i < 50; i++) {
        const ep = b.pick(ctx({ exclude, hashKey: i % 2 ? `k${i}` : undefined }));
        assert.ok(ep === eps[0] || ep === eps[1]);
      }
      eps[1]!.healthy = false;
      assert.equal(b.pick(ctx({ exclude })), eps[0]);
      assert.equal(b.pick(ctx({ exclude, hashKey: 'x' })), eps[0]);
    });

    test(`${type}: a single endpoint is always picked`, () => {
      const eps = endpoints(1);
      const b = createBalancer(type, eps, { random: seeded(4) });
      for (let i = 0; i < 10; i++) assert.equal(b.pick(ctx({ hashKey: i % 2 ? `k${i}` : undefined })), eps[0]);
    });
  }
});

describe('RoundRobin', () => {
  test('rotates exactly', () => {
    const eps = endpoints(3);
    const b = createBalancer('RoundRobin', eps, { random: () => 0 });
    const ids = Array.from({ length: 7 }, () => b.pick(ctx())!.id);
    assert.deepEqual(ids, ['e0', 'e1', 'e2', 'e0', 'e1', 'e2', 'e0']);
  });

  test('starts at a random position but keeps the rotation', () => {
    const eps = endpoints(4);
    const b = createBalancer('RoundRobin', eps, { random: () => 0.6 });
    assert.deepEqual(Array.from({ length: 5 }, () => b.pick(ctx())!.id), ['e2', 'e3', 'e0', 'e1', 'e2']);
  });

  test('skips unavailable endpoints and takes them back when available', () => {
    const eps = endpoints(4);
    const b = createBalancer('RoundRobin', eps, { random: () => 0 });
    eps[1]!.healthy = false;
    eps[2]!.draining = true;
    assert.deepEqual(Array.from({ length: 4 }, () => b.pick(ctx())!.id), ['e0', 'e3', 'e0', 'e3']);
    eps[1]!.healthy = true;
    assert.deepEqual(Array.from({ length: 3 }, () => b.pick(ctx())!.id), ['e0', 'e1', 'e3']);
  });

  test('exclude skips without breaking the rotation', () => {
    const eps = endpoints(3);
    const b = createBalancer('RoundRobin', eps, { random: () => 0 });
    assert.equal(b.pick(ctx({ exclude: new Set([eps[0]!]) })), eps[1]);
    assert.equal(b.pick(ctx()), eps[2]);
    assert.equal(b.pick(ctx()), eps[0]);
  });
});

describe('LeastRequest', () => {
  test('prefers endpoints with fewer requests in flight', () => {
    const eps = endpoints(3);
    eps[0]!.inflight = 0;
    eps[1]!.inflight = 5;
    eps[2]!.inflight = 10;
    const c = counts(createBalancer('LeastRequest', eps, { random: seeded(5) }), eps, 3000);
    // Two distinct choices: the busiest never wins; the idlest wins 2 of 3 pairs.
    assert.equal(c[2], 0);
    assert.ok(c[0]! > 1800 && c[0]! < 2200, `idle endpoint got ${c[0]}`);
    assert.ok(c[1]! > 800 && c[1]! < 1200, `middle endpoint got ${c[1]}`);
  });

  test('two endpoints: always the less loaded one', () => {
    const eps = endpoints(2);
    eps[0]!.inflight = 3;
    eps[1]!.inflight = 1;
    const b = createBalancer('LeastRequest', eps, { random: seeded(6) });
    for (let i = 0; i < 100; i++) assert.equal(b.pick(ctx()), eps[1]);
  });

  test('equal load spreads evenly', () => {
    const eps = endpoints(4);
    const c = counts(createBalancer('LeastRequest', eps, { random: seeded(7) }), eps, 8000);
    for (const n of c) assert.ok(n > 1700 && n < 2300, `got ${c.join(',')}`);
  });
});

describe('EWMA', () => {
  test('prefers the low-latency endpoint after observeLatency', () => {
    const eps = endpoints(3);
    eps[0]!.observeLatency(5, NOW);
    eps[1]!.observeLatency(100, NOW);
    eps[2]!.observeLatency(200, NOW);
    const c = counts(createBalancer('EWMA', eps, { random: seeded(8) }), eps, 3000);
    assert.equal(c[2], 0);
    assert.ok(c[0]! > c[1]!, `got ${c.join(',')}`);
    assert.ok(c[0]! > 1800, `got ${c.join(',')}`);
  });

  test('in-flight work raises the cost of a fast endpoint', () => {
    const eps = endpoints(2);
    eps[0]!.observeLatency(10, NOW);
    eps[1]!.observeLatency(30, NOW);
    const b = createBalancer('EWMA', eps, { random: seeded(9) });
    assert.equal(b.pick(ctx()), eps[0]);
    eps[0]!.inflight = 5; // cost 10×6 = 60 > 30×1
    assert.equal(b.pick(ctx()), eps[1]);
  });
});

describe('Random', () => {
  test('roughly uniform over 10k picks', () => {
    const eps = endpoints(4);
    const c = counts(createBalancer('Random', eps, { random: seeded(10) }), eps, 10_000);
    for (const n of c) assert.ok(Math.abs(n - 2500) < 200, `got ${c.join(',')}`);
  });

  test('uniform among the available ones when some are not', () => {
    const eps = endpoints(5);
    eps[0]!.healthy = false;
    eps[3]!.healthy = false;
    const c = counts(createBalancer('Random', eps, { random: seeded(11) }), eps, 9000);
    assert.equal(c[0], 0);
    assert.equal(c[3], 0);
    for (const i of [1, 2, 4]) assert.ok(Math.abs(c[i]! - 3000) < 250, `got ${c.join(',')}`);
  });
});

describe('RingHash', () => {
  const keys = Array.from({ length: 2000 }, (_, i) => `user-${i}`);
  const mapping = (b: Balancer): (string | undefined)[] => keys.map((k) => b.pick(ctx({ hashKey: k }))?.id);

  test('hash32 is a stable 32-bit hash', () => {
    assert.equal(hash32('a'), hash32('a'));
    assert.notEqual(hash32('a'), hash32('b'));
    for (const k of keys.slice(0, 50)) assert.ok(Number.isInteger(hash32(k)) && hash32(k) >= 0 && hash32(k) < 2 ** 32);
  });

  test('same key → same endpoint, independent of list order and randomness', () => {
    const eps = endpoints(5);
    const a = createBalancer('RingHash', eps, { random: seeded(12) });
    const b = createBalancer('RingHash', [...eps].reverse(), { random: seeded(13) });
    const first = mapping(a);
    assert.deepEqual(mapping(a), first);
    assert.deepEqual(mapping(b), first);
  });

  test('keys spread over the endpoints', () => {
    const eps = endpoints(5);
    const m = mapping(createBalancer('RingHash', eps));
    for (const ep of eps) {
      const share = m.filter((id) => id === ep.id).length / keys.length;
      assert.ok(share > 0.1 && share < 0.3, `${ep.id} got ${share}`);
    }
  });

  test('removing one endpoint remaps only the keys that were on it', () => {
    const eps = endpoints(5);
    const before = mapping(createBalancer('RingHash', eps));
    const after = mapping(createBalancer('RingHash', eps.filter((ep) => ep.id !== 'e2')));
    let moved = 0;
    keys.forEach((_, i) => {
      if (before[i] === 'e2') {
        assert.notEqual(after[i], 'e2');
        moved++;
      } else {
        assert.equal(after[i], before[i], `key ${keys[i]} moved from ${before[i]} to ${after[i]}`);
      }
    });
    assert.ok(moved > 0);
  });

  test('an ejected endpoint is skipped: its keys go where they would without it', () => {
    const eps = endpoints(5);
    const b = createBalancer('RingHash', eps);
    const before = mapping(b);
    const without = mapping(createBalancer('RingHash', eps.filter((ep) => ep.id !== 'e1')));
    eps[1]!.ejectedUntil = NOW + 30_000;
    assert.deepEqual(mapping(b), without);
    assert.ok(before.includes('e1'));
    eps[1]!.ejectedUntil = 0;
    assert.deepEqual(mapping(b), before);
  });

  test('exclude moves a key to the next endpoint clockwise', () => {
    const eps = endpoints(4);
    const b = createBalancer('RingHash', eps);
    const home = b.pick(ctx({ hashKey: 'session-42' }))!;
    const next = b.pick(ctx({ hashKey: 'session-42', exclude: new Set([home]) }))!;
    assert.notEqual(next, home);
    const without = createBalancer('RingHash', eps.filter((ep) => ep !== home));
    assert.equal(without.pick(ctx({ hashKey: 'session-42' })), next);
  });

  test('without a hashKey the pick is random', () => {
    const eps = endpoints(4);
    const c = counts(createBalancer('RingHash', eps, { random: seeded(14) }), eps, 8000);
    for (const n of c) assert.ok(Math.abs(n - 2000) < 200, `got ${c.join(',')}`);
  });
});
