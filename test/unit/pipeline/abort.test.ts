/**
 * DownstreamAbort (src/proxy/pipeline/abort.ts): a request's cancellation without an AbortController
 * unless someone reads `signal`; `whenAborted` subscribers and signal listeners both hear it once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { DownstreamAbort, ListenerRequest, whenAborted } from '../../../src/proxy/pipeline/abort.js';
import type { MeshRequest } from '../../../src/proxy/pipeline/types.js';
import { meshRequest } from '../filters/helpers.js';

function lazyRequest(abort: DownstreamAbort): MeshRequest {
  return new ListenerRequest(abort, 'outbound', 'GET', '/', 'backend', {}, Readable.from([]), true, 'http', false, {}, 'backend', 'r1');
}

describe('DownstreamAbort', () => {
  it('calls whenAborted subscribers once, and not after they unsubscribed', () => {
    const abort = new DownstreamAbort();
    const req = lazyRequest(abort);
    const calls: string[] = [];
    whenAborted(req, () => calls.push('a'));
    const off = whenAborted(req, () => calls.push('b'));
    off();
    abort.abort();
    abort.abort();
    assert.deepEqual(calls, ['a']);
  });

  it('calls a subscriber at once when the request is already aborted', () => {
    const abort = new DownstreamAbort();
    abort.abort();
    let called = 0;
    whenAborted(lazyRequest(abort), () => called++);
    assert.equal(called, 1);
  });

  it('creates the AbortSignal only when read; it reflects an abort before and after', () => {
    const before = new DownstreamAbort();
    before.abort();
    assert.equal(before.signal.aborted, true);

    const after = new DownstreamAbort();
    const req = lazyRequest(after);
    let heard = 0;
    req.signal.addEventListener('abort', () => heard++);
    let subscribed = 0;
    whenAborted(req, () => subscribed++);
    after.abort();
    assert.equal(req.signal.aborted, true);
    assert.deepEqual([heard, subscribed], [1, 1]);
  });

  it('a spread copy with its own signal uses that signal, not the original downstream', () => {
    const abort = new DownstreamAbort();
    const req = lazyRequest(abort);
    const controller = new AbortController();
    const copy: MeshRequest = { ...req, signal: controller.signal };
    let heard = 0;
    whenAborted(copy, () => heard++);
    abort.abort(); // the copy is only cancelled through its own signal (filters chain them explicitly)
    assert.equal(heard, 0);
    controller.abort();
    assert.equal(heard, 1);
  });

  it('a spread copy keeps every field but the private downstream link', () => {
    const abort = new DownstreamAbort();
    const req = lazyRequest(abort);
    req.attrs.route = 'r/0';
    const copy: MeshRequest = { ...req, signal: new AbortController().signal };
    assert.equal(ListenerRequest.downstreamAbortOf(copy), undefined);
    assert.equal(ListenerRequest.downstreamAbortOf(req), abort);
    assert.deepEqual([copy.method, copy.path, copy.requestId, copy.emptyBody, copy.attrs], ['GET', '/', 'r1', true, { route: 'r/0' }]);
  });

  it('plain requests (a real AbortSignal) work through whenAborted too', () => {
    const controller = new AbortController();
    const req = meshRequest({ signal: controller.signal });
    let heard = 0;
    const off = whenAborted(req, () => heard++);
    off();
    controller.abort();
    assert.equal(heard, 0);
    whenAborted(req, () => heard++);
    assert.equal(heard, 1, 'already aborted: called at once');
  });
});
