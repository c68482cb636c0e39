/**
 * SseEventsClient (adapters/api/events-stream.ts) with mocked timers and a fake response: one overview per interval,
 * none while the socket is full (skipped and counted) until 'drain', none while the previous one is still being
 * built, history only until the first overview is written, heartbeats, and everything stops when the client leaves.
 */
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type http from 'node:http';
import { EventStreams, TooManyStreamsError } from '../../../src/control-plane/adapters/api/events-stream.js';
import type { Overview } from '../../../src/control-plane/contract.js';

class FakeResponse extends EventEmitter {
  frames: string[] = [];
  full = false;
  writableEnded = false;
  destroyed = false;
  socket = { setNoDelay: () => undefined };
  writeHead(): this { return this; }
  write(frame: string): boolean { this.frames.push(frame); return !this.full; }
  end(): void { this.writableEnded = true; }
  overviews(): number { return this.frames.filter((f) => f.startsWith('event: overview')).length; }
}

const overview = (n: number): Overview => ({ at: new Date(n).toISOString() } as unknown as Overview);
const flush = async () => { for (let i = 0; i < 5; i++) await Promise.resolve(); };

describe('SseEventsClient', () => {
  beforeEach(() => { mock.timers.enable({ apis: ['setInterval'] }); });
  afterEach(() => { mock.timers.reset(); });

  it('sends one overview at once and one per interval, history only first, and heartbeats', async () => {
    let dropped = 0;
    const streams = new EventStreams({ intervalMs: 2000, heartbeatMs: 15_000, onDropped: () => { dropped++; } });
    const res = new FakeResponse();
    const firsts: boolean[] = [];
    streams.start(res as unknown as http.ServerResponse, async (first) => { firsts.push(first); return overview(firsts.length); }, (err) => { throw err; });
    await flush();
    assert.equal(res.overviews(), 1);
    for (let i = 0; i < 7; i++) { mock.timers.tick(2000); await flush(); }
    assert.equal(res.overviews(), 8);
    assert.deepEqual(firsts, [true, false, false, false, false, false, false, false]);
    assert.equal(res.frames.filter((f) => f === ': heartbeat\n\n').length, 0);
    mock.timers.tick(1000); // 15 s since start
    assert.equal(res.frames.filter((f) => f === ': heartbeat\n\n').length, 1);
    assert.equal(dropped, 0);
  });

  it('skips (and counts) overviews while the socket is full, resumes after drain', async () => {
    let dropped = 0;
    const streams = new EventStreams({ intervalMs: 2000, onDropped: () => { dropped++; } });
    const res = new FakeResponse();
    const client = streams.start(res as unknown as http.ServerResponse, async () => overview(0), () => undefined);
    await flush();
    res.full = true;
    mock.timers.tick(2000); await flush(); // written, but the buffer is now full
    const written = res.frames.length;
    for (let i = 0; i < 10; i++) { mock.timers.tick(2000); await flush(); }
    assert.equal(res.frames.length, written, 'nothing more is written while the client is behind');
    assert.equal(dropped, 10);
    assert.equal(client.skipped, 10);
    res.full = false;
    res.emit('drain');
    mock.timers.tick(2000); await flush();
    assert.equal(res.frames.length, written + 1, 'a whole overview again after drain');
  });

  it('skips a tick while the previous overview is still being built', async () => {
    let dropped = 0;
    const streams = new EventStreams({ intervalMs: 2000, onDropped: () => { dropped++; } });
    const res = new FakeResponse();
    let release!: () => void;
    let builds = 0;
    streams.start(res as unknown as http.ServerResponse, (first) => {
      builds++;
      return first ? Promise.resolve(overview(0)) : new Promise<Overview>((r) => { release = () => r(overview(1)); });
    }, () => undefined);
    await flush();
    mock.timers.tick(2000); await flush(); // a slow build starts
    mock.timers.tick(2000); await flush(); // skipped
    mock.timers.tick(2000); await flush(); // skipped
    assert.equal(builds, 2);
    assert.equal(dropped, 2);
    release(); await flush();
    assert.equal(res.overviews(), 2);
  });

  it('bounds the open streams and frees a slot when a client leaves', async () => {
    const streams = new EventStreams({ maxClients: 2 });
    const a = new FakeResponse();
    const b = new FakeResponse();
    streams.start(a as unknown as http.ServerResponse, async () => overview(0), () => undefined);
    streams.start(b as unknown as http.ServerResponse, async () => overview(0), () => undefined);
    assert.throws(() => streams.start(new FakeResponse() as unknown as http.ServerResponse, async () => overview(0), () => undefined), TooManyStreamsError);
    a.emit('close');
    assert.equal(streams.size, 1);
    assert.ok(a.writableEnded);
    const framesBefore = a.frames.length;
    mock.timers.tick(10_000); await flush();
    assert.equal(a.frames.length, framesBefore, 'a closed stream gets nothing more');
    streams.start(new FakeResponse() as unknown as http.ServerResponse, async () => overview(0), () => undefined);
    assert.equal(streams.size, 2);
    streams.closeAll();
    assert.equal(streams.size, 0);
  });
});
