import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import type { BuildContext } from '../../../src/proxy/pipeline/factory.js';
import type { MeshRequest, MeshResponse } from '../../../src/proxy/pipeline/types.js';
import type { HTTPRouteRule } from '../../../src/api/schema/resources.js';
import {
  applyHeaderModifier, compileHeaderModifier, requestHeaderModifierFactory, responseHeaderModifierFactory,
} from '../../../src/proxy/filters/header-modifier.js';

const ctx = { snapshot: { clusters: {} }, services: {}, self: 'frontend' } as unknown as BuildContext;

function request(headers: MeshRequest['headers'] = {}): MeshRequest {
  return {
    direction: 'outbound', method: 'GET', path: '/', authority: 'backend', headers, body: Readable.from([]),
    protocol: 'http', grpc: false, source: {}, destination: 'backend', requestId: 'r1', startedAt: performance.now(),
    signal: new AbortController().signal, attrs: {},
  };
}

const ok = (headers: MeshResponse['headers'] = {}): MeshResponse => ({ status: 200, headers, body: null });

describe('header modifiers', () => {
  test('set replaces, add appends, remove deletes; names are case-insensitive', () => {
    const m = compileHeaderModifier({
      set: [{ name: 'X-Env', value: 'prod' }],
      add: [{ name: 'X-Tag', value: 'b' }],
      remove: ['X-Drop'],
    }, 'test');
    const headers: MeshRequest['headers'] = { 'x-env': 'dev', 'x-tag': 'a', 'x-drop': 'gone', keep: 'yes' };
    applyHeaderModifier(m, headers);
    assert.deepEqual(headers, { 'x-env': 'prod', 'x-tag': ['a', 'b'], keep: 'yes' });
    const empty: MeshRequest['headers'] = {};
    applyHeaderModifier(m, empty);
    assert.deepEqual(empty, { 'x-env': 'prod', 'x-tag': 'b' });
  });

  test('the request filter modifies what goes upstream', async () => {
    const rule: HTTPRouteRule = { filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-A', value: '1' }], remove: ['x-b'] } }] };
    const filter = requestHeaderModifierFactory.build(ctx, rule, 'r', 'backend');
    assert.ok(filter);
    assert.equal(responseHeaderModifierFactory.build(ctx, rule, 'r', 'backend'), null, 'no response modifier configured');
    let seen: MeshRequest['headers'] | undefined;
    await filter.handle(request({ 'x-b': 'x', 'x-c': 'c' }), async (req) => { seen = { ...req.headers }; return ok(); });
    assert.deepEqual(seen, { 'x-a': '1', 'x-c': 'c' });
  });

  test('the response filter modifies the answer', async () => {
    const rule: HTTPRouteRule = { filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { add: [{ name: 'X-Served-By', value: 'mesh' }], remove: ['server'] } }] };
    const filter = responseHeaderModifierFactory.build(ctx, rule, 'r', 'backend');
    assert.ok(filter);
    const res = await filter.handle(request(), async () => ok({ server: 'app', 'x-served-by': 'app' }));
    assert.deepEqual(res.headers, { 'x-served-by': ['app', 'mesh'] });
  });

  test('returns null when the rule has no modifier', () => {
    assert.equal(requestHeaderModifierFactory.build(ctx, {}, 'r', 'backend'), null);
    assert.equal(responseHeaderModifierFactory.build(ctx, { filters: [] }, 'r', 'backend'), null);
  });

  test('refuses mesh headers, reserved headers, duplicates and bad values at build (NACK)', () => {
    const build = (mod: object) => () => requestHeaderModifierFactory.build(ctx, { filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: mod }] }, 'r', 'backend');
    assert.throws(build({ set: [{ name: 'X-Trellis-Peer', value: 'spiffe://evil' }] }), /x-trellis-\* headers are reserved/);
    assert.throws(build({ add: [{ name: 'x-trellis-error', value: 'X' }] }), /reserved for the mesh/);
    assert.throws(build({ remove: ['x-trellis-peer'] }), /reserved for the mesh/);
    assert.throws(build({ set: [{ name: 'Host', value: 'x' }] }), /hop-by-hop/);
    assert.throws(build({ set: [{ name: ':path', value: '/x' }] }), /not a valid header name/);
    assert.throws(build({ set: [{ name: 'x-a', value: '1' }], add: [{ name: 'X-A', value: '2' }] }), /more than once/);
    assert.throws(build({ set: [{ name: 'x-a', value: 'a\r\nx-evil: 1' }] }), /CR, LF or NUL/);
    const twice = { filters: [
      { type: 'ResponseHeaderModifier' as const, responseHeaderModifier: { remove: ['a'] } },
      { type: 'ResponseHeaderModifier' as const, responseHeaderModifier: { remove: ['b'] } },
    ] };
    assert.throws(() => responseHeaderModifierFactory.build(ctx, twice, 'r', 'backend'), /at most one ResponseHeaderModifier/);
  });
});
