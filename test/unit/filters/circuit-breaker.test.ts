import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { MeshError } from '../../../src/api/errors.js';
import { CircuitBreaker, CircuitBreakerFilter, circuitBreakerFor, STREAMS_PER_CONNECTION } from '../../../src/proxy/filters/circuit-breaker.js';
import type { Snapshot } from '../../../src/api/schema/snapshot.js';
import type { MeshResponse } from '../../../src/proxy/pipeline/types.js';
import { meshRequest } from './helpers.js';

describe('circuit breaker', () => {
  it('answers 503 CIRCUIT_OPEN at once beyond maxRequests in flight, and frees the slot when the body ends', async () => {
    const overflows: string[] = [];
    const breaker = new CircuitBreaker('backend', { maxRequests: 1 }, (l) => overflows.push(l));
    const f = new CircuitBreakerFilter(breaker);
    const body = new PassThrough();
    const first = await f.handle(meshRequest(), async (): Promise<MeshResponse> => ({ status: 200, headers: {}, body }));
    assert.equal(breaker.inflight, 1, 'held while the body streams');
    let called = false;
    await assert.rejects(f.handle(meshRequest(), async () => { called = true; return { status: 200, headers: {}, body: null }; }),
      (err: MeshError) => err.code === 'CIRCUIT_OPEN' && err.status === 503);
    assert.equal(called, false, 'never queued or forwarded');
    assert.deepEqual(overflows, ['requests']);
    first.body!.resume();
    body.end('done');
    await new Promise((r) => setImmediate(r));
    assert.equal(breaker.inflight, 0);
    const ok = await f.handle(meshRequest(), async () => ({ status: 200, headers: {}, body: null }));
    assert.equal(ok.status, 200);
    assert.equal(breaker.inflight, 0, 'a bodiless response releases at once');
  });

  it('releases the slot when the request fails', async () => {
    const breaker = new CircuitBreaker('backend', { maxRequests: 1 });
    const f = new CircuitBreakerFilter(breaker);
    await assert.rejects(f.handle(meshRequest(), async () => { throw new MeshError('UPSTREAM_RESET'); }), { code: 'UPSTREAM_RESET' });
    assert.equal(breaker.inflight, 0);
  });

  it('approximates pending requests as in-flight beyond maxConnections × streams', () => {
    const breaker = new CircuitBreaker('backend', { maxConnections: 1, maxPendingRequests: 2 });
    const releases = [];
    for (let i = 0; i < STREAMS_PER_CONNECTION + 2; i++) releases.push(breaker.acquire());
    assert.throws(() => breaker.acquire(), (err: MeshError) => err.code === 'CIRCUIT_OPEN' && /pending/.test(err.message));
    releases[0]!();
    releases[0]!(); // idempotent
    assert.equal(breaker.inflight, STREAMS_PER_CONNECTION + 1);
    breaker.acquire();
  });

  it('limits concurrent retries to maxRetries', () => {
    const overflows: string[] = [];
    const breaker = new CircuitBreaker('backend', { maxRetries: 1 }, (l) => overflows.push(l));
    const release = breaker.tryAcquireRetry();
    assert.ok(release);
    assert.equal(breaker.tryAcquireRetry(), undefined);
    assert.deepEqual(overflows, ['retries']);
    release();
    assert.ok(breaker.tryAcquireRetry());
  });

  it('is built once per config version and only with a policy', () => {
    const snap = (cb?: object) => ({ clusters: { backend: { name: 'backend', protocol: 'http', endpoints: [], trafficPolicy: cb ? { targetRef: { name: 'backend' }, circuitBreaker: cb } : undefined } } }) as unknown as Snapshot;
    const v1 = snap({ maxRequests: 3 });
    assert.equal(circuitBreakerFor(v1, 'backend'), circuitBreakerFor(v1, 'backend'));
    assert.notEqual(circuitBreakerFor(v1, 'backend'), circuitBreakerFor(snap({ maxRequests: 3 }), 'backend'));
    assert.equal(circuitBreakerFor(snap(), 'backend'), undefined);
  });
});
