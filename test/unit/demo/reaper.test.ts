/** The demo reaper's stdin protocol and the one directory it may remove. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyLine, isDemoWorkDir } from '../../../src/demo/reaper.js';

describe('demo reaper', () => {
  it('tracks +PID and forgets -PID, ignoring anything else', () => {
    const pids = new Set<number>();
    for (const line of ['+123', '+456', '-123', 'hello', '+', '+-5', '+1', '+0', '+12345678901', ' +789 ']) applyLine(pids, line);
    assert.deepEqual([...pids].sort(), [456, 789]);
  });

  it('removes only a trellis-demo-* directory directly in the OS temp dir', () => {
    assert.equal(isDemoWorkDir(join(tmpdir(), 'trellis-demo-AbC123')), true);
    for (const dir of [undefined, '', '/', tmpdir(), join(tmpdir(), 'other'), join(tmpdir(), 'trellis-demo-x', '..'),
      join(tmpdir(), 'a', 'trellis-demo-x'), '/home/trellis-demo-x', join(tmpdir(), 'trellis-demo-../x')]) {
      assert.equal(isDemoWorkDir(dir), false, String(dir));
    }
  });
});
