/**
 * DownstreamAbort (src/proxy/pipeline/abort.ts): a request's cancellation without an AbortController
 * unless someone reads `signal`; `whenAborted` subscribers and signal listeners both hear it once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DownstreamAbort, attachDownstreamAbort, whenAborted } from '../../../src/proxy/pipeline/abort.js';
import type { MeshRequest } from '../../../src/proxy/pipeline/types.js';
import { meshRequest } from '../filters/helpers.js';

function lazyRequest(abort: DownstreamAbort): MeshRequest {
  const { signal: _ignored, ...rest } = meshRequest();
  const req = { ...rest, get signal() { return abort.signal; } } as MeshRequest;
  attachDownstreamAbort(req, abort);
  return req;
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

  it('a spread copy without a new signal keeps the downstream signal as a value', () => {
    const abort = new DownstreamAbort();
    const copy: MeshRequest = { ...lazyRequest(abort) };
    let heard = 0;
    whenAborted(copy, () => heard++);
    abort.abort();
    assert.equal(heard, 1);
    assert.equal(copy.signal.aborted, true);
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
