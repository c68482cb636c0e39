import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LineSplitter } from '../../../src/proxy/bootstrap/xds-stream.js';

function feed(splitter: LineSplitter, chunks: string[]): { lines: string[]; ok: boolean } {
  const lines: string[] = [];
  let ok = true;
  for (const c of chunks) ok = splitter.push(c, (l) => lines.push(l)) && ok;
  return { lines, ok };
}

describe('LineSplitter (config stream NDJSON framing)', () => {
  it('joins a line split over many chunks and splits several lines in one chunk', () => {
    const big = 'x'.repeat(100_000);
    const text = `{"a":1}\n${big}\n{"b":2}\n{"c":`;
    const chunks: string[] = [];
    for (let i = 0; i < text.length; i += 777) chunks.push(text.slice(i, i + 777));
    const s = new LineSplitter(1 << 20);
    const { lines, ok } = feed(s, chunks);
    assert.ok(ok);
    assert.deepEqual(lines, ['{"a":1}', big, '{"b":2}']);
    assert.deepEqual(feed(s, ['3}\n']).lines, ['{"c":3}'], 'the partial line is kept until its newline');
  });

  it('handles empty lines and a chunk that is only a newline', () => {
    const s = new LineSplitter(100);
    assert.deepEqual(feed(s, ['ab', '\n', '\n', 'c\nd', '\n']).lines, ['ab', '', 'c', 'd']);
  });

  it('refuses a line longer than the bound, complete or still partial', () => {
    assert.equal(new LineSplitter(10).push('x'.repeat(11), () => undefined), false);
    assert.equal(new LineSplitter(10).push('x'.repeat(11) + '\n', () => undefined), false);
    const s = new LineSplitter(10);
    assert.equal(s.push('x'.repeat(6), () => undefined), true);
    assert.equal(s.push('x'.repeat(6), () => undefined), false);
  });
});
