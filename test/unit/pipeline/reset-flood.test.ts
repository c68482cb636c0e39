/**
 * The HTTP/2 rapid-reset bound (src/proxy/http/reset-flood.ts): a token bucket per session, with
 * explicit timestamps.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants, type Http2Session } from 'node:http2';
import { RESET_BURST, RESET_REFILL_PER_S, noteStreamReset } from '../../../src/proxy/http/reset-flood.js';

function fakeSession(): Http2Session & { closedWith?: number } {
  const s = {
    destroyed: false,
    closedWith: undefined as number | undefined,
    destroy(_err: unknown, code: number) { s.destroyed = true; s.closedWith = code; },
  };
  return s as unknown as Http2Session & { closedWith?: number };
}

describe('noteStreamReset', () => {
  it('allows a burst, then closes the session with GOAWAY ENHANCE_YOUR_CALM, once', () => {
    const session = fakeSession();
    let floods = 0;
    for (let i = 0; i < RESET_BURST; i++) assert.equal(noteStreamReset(session, 0, () => floods++), false);
    assert.equal(session.destroyed, false);
    assert.equal(noteStreamReset(session, 0, () => floods++), true);
    assert.equal(session.closedWith, constants.NGHTTP2_ENHANCE_YOUR_CALM);
    assert.equal(noteStreamReset(session, 0, () => floods++), false, 'already closed');
    assert.equal(floods, 1);
  });

  it('refills over time: a steady rate below the refill never closes the session', () => {
    const session = fakeSession();
    const every = 1000 / (RESET_REFILL_PER_S / 2); // half the refill rate
    for (let i = 0; i < 5 * RESET_BURST; i++) noteStreamReset(session, i * every);
    assert.equal(session.destroyed, false);
  });

  it('counts per session', () => {
    const a = fakeSession(), b = fakeSession();
    for (let i = 0; i < RESET_BURST; i++) { noteStreamReset(a, 0); noteStreamReset(b, 0); }
    assert.equal(a.destroyed || b.destroyed, false);
    noteStreamReset(a, 0);
    assert.deepEqual([a.destroyed, b.destroyed], [true, false]);
  });
});
