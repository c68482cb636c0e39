import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MeshError } from '../../../src/api/errors.js';
import { RateLimitFilter, RateLimiter, TokenBucket } from '../../../src/proxy/filters/rate-limit.js';
import { meshRequest } from './helpers.js';

describe('rate limit', () => {
  it('token bucket: burst at once, then requestsPerSecond, with retry-after seconds', () => {
    const b = new TokenBucket(5, 5, 0);
    for (let i = 0; i < 5; i++) assert.equal(b.take(0), 0);
    assert.equal(b.take(0), 1, 'the 6th waits about a second (rounded up)');
    assert.equal(b.take(199), 1);
    assert.equal(b.take(200), 0, 'one token back after 200ms');
    assert.equal(b.take(10_000), 0, 'refill caps at burst');
    for (let i = 0; i < 4; i++) assert.equal(b.take(10_000), 0);
    assert.equal(b.take(10_000), 1);
    const slow = new TokenBucket(0.1, 1, 0);
    assert.equal(slow.take(0), 0);
    assert.equal(slow.take(0), 10, 'retry-after is 10s at 0.1/s');
  });

  it('defaults burst to ceil(requestsPerSecond)', () => {
    assert.equal(new RateLimiter({ requestsPerSecond: 2.5 }).burst, 3);
  });

  it('perSource: one bucket per verified identity, bounded with LRU eviction', () => {
    let now = 0;
    const l = new RateLimiter({ requestsPerSecond: 1, burst: 1, perSource: true }, () => now, 3);
    assert.equal(l.take('a'), 0);
    assert.equal(l.take('a'), 1);
    assert.equal(l.take('b'), 0, 'b has its own bucket');
    l.take('c');
    l.take('a'); // a is now most recent
    l.take('d'); // evicts b (least recently used)
    assert.equal(l.sources, 3);
    assert.equal(l.take('b'), 0, 'b was evicted: fresh bucket');
    assert.equal(l.take('a'), 1, 'a (recently used) kept its exhausted bucket');
    now = 5000;
    assert.equal(l.take('a'), 0);
  });

  it('rejects with 429 RATE_LIMITED and a retry-after header, keyed on the source identity', async () => {
    const l = new RateLimiter({ requestsPerSecond: 5, burst: 5, perSource: true }, () => 0);
    const f = new RateLimitFilter(l);
    const from = (id: string) => meshRequest({ direction: 'inbound', source: { identity: id } });
    const ok = async () => ({ status: 200, headers: {}, body: null });
    for (let i = 0; i < 5; i++) assert.equal((await f.handle(from('spiffe://t/service/a'), ok)).status, 200);
    await assert.rejects(f.handle(from('spiffe://t/service/a'), ok), (err: MeshError) =>
      err.code === 'RATE_LIMITED' && err.status === 429 && err.headers['retry-after'] === '1');
    assert.equal((await f.handle(from('spiffe://t/service/b'), ok)).status, 200);
  });
});
