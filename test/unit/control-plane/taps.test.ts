/**
 * The control plane's tap sessions (core/taps.ts) and denial log (core/denials.ts), with a fake transport.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../../src/api/schema/validate.js';
import type { TapEvent, DenialEvent } from '../../../src/api/schema/tap.js';
import { TapService, TooManyTapsError, type TapControlMessage, type TapSubscriber } from '../../../src/control-plane/core/taps.js';
import { DenialLog } from '../../../src/control-plane/core/denials.js';

function fakeMesh() {
  const connected = new Map<string, string>(); // instance → service
  const sent: Array<{ to: string; msg: TapControlMessage }> = [];
  const transport = {
    instancesOf: (service: string) => [...connected].filter(([, s]) => s === service).map(([id]) => id),
    send: (to: string, msg: TapControlMessage) => { sent.push({ to, msg }); },
  };
  return { connected, sent, transport };
}

function subscriber() {
  const events: TapEvent[] = [];
  let changes = 0;
  const sub: TapSubscriber = { event: (e) => events.push(e), changed: () => { changes++; } };
  return { sub, events, changes: () => changes };
}

const event = (path: string): TapEvent => ({
  at: new Date(0).toISOString(), instance: 'b1', direction: 'inbound', source: 'frontend', destination: 'backend', method: 'GET', path,
  status: 200, latencyMs: 1, requestHeaders: {},
});

describe('TapService', () => {
  it('starts a tap on every connected proxy of the service, and on proxies of it that connect later', () => {
    const mesh = fakeMesh();
    mesh.connected.set('b1', 'backend').set('b2', 'backend').set('f1', 'frontend');
    const metrics = { sessions: 0, dropped: {} as Record<string, number> };
    const taps = new TapService({
      newId: () => 'T', eventsPerSecond: 50,
      metrics: { setTapSessions: (n) => { metrics.sessions = n; }, tapEventsDropped: (w, n) => { metrics.dropped[w] = (metrics.dropped[w] ?? 0) + n; } },
    });
    taps.attach(mesh.transport);
    const s = subscriber();
    const session = taps.open({ service: 'backend', path: '/api', method: 'get' }, s.sub);
    assert.equal(metrics.sessions, 1);
    assert.deepEqual(mesh.sent.map((x) => x.to).sort(), ['b1', 'b2']);
    assert.deepEqual(mesh.sent[0]!.msg, { type: 'tap-start', tapId: 'T', maxEventsPerSecond: 50, path: '/api', method: 'get' });
    assert.equal(session.instances.size, 2);

    taps.proxyConnected('f2', 'frontend');
    taps.proxyConnected('b3', 'backend');
    assert.deepEqual(mesh.sent.slice(2).map((x) => [x.to, x.msg.type]), [['b3', 'tap-start']]);
    assert.equal(session.instances.size, 3);

    taps.receive('b1', 'backend', { type: 'tap', tapId: 'T', events: [event('/api/1'), event('/api/2')], dropped: 4 });
    assert.deepEqual(s.events.map((e) => e.path), ['/api/1', '/api/2']);
    assert.equal(session.dropped, 4);
    session.countDropped(3);
    assert.equal(session.dropped, 7);
    assert.deepEqual(metrics.dropped, { proxy: 4, client: 3 });

    taps.proxyDisconnected('b2');
    assert.equal(session.instances.size, 2);

    taps.refresh();
    assert.deepEqual(mesh.sent.slice(3).map((x) => [x.to, x.msg.type]).sort(), [['b1', 'tap-start'], ['b3', 'tap-start']]);

    // The client leaves: tap-stop to the proxies tapped; later batches are answered with tap-stop.
    const before = mesh.sent.length;
    session.close();
    assert.equal(metrics.sessions, 0);
    assert.deepEqual(mesh.sent.slice(before).map((x) => [x.to, x.msg]).sort(), [['b1', { type: 'tap-stop', tapId: 'T' }], ['b3', { type: 'tap-stop', tapId: 'T' }]]);
    taps.receive('b1', 'backend', { type: 'tap', tapId: 'T', events: [event('/late')], dropped: 0 });
    assert.deepEqual(mesh.sent.at(-1), { to: 'b1', msg: { type: 'tap-stop', tapId: 'T' } });
    assert.equal(s.events.length, 2);
  });

  it('ignores a batch for a session of another service (a proxy cannot feed another service\'s tap)', () => {
    const mesh = fakeMesh();
    const taps = new TapService({ newId: () => 'T' });
    taps.attach(mesh.transport);
    const s = subscriber();
    taps.open({ service: 'backend' }, s.sub);
    taps.receive('f1', 'frontend', { type: 'tap', tapId: 'T', events: [event('/x')], dropped: 0 });
    assert.equal(s.events.length, 0);
  });

  it('validates the filter with field paths and bounds concurrent taps', () => {
    const taps = new TapService({ maxSessions: 2 });
    assert.throws(() => taps.open({ service: 'Bad Name!', path: 'nope', method: 'G3T' }, subscriber().sub), (err: unknown) => {
      assert.ok(err instanceof ValidationError);
      assert.deepEqual(err.errors.map((e) => e.path).sort(), ['method', 'path', 'service']);
      return true;
    });
    assert.throws(() => taps.open({}, subscriber().sub), (err: unknown) => err instanceof ValidationError && err.errors[0]!.path === 'service');
    taps.open({ service: 'a' }, subscriber().sub);
    const second = taps.open({ service: 'a' }, subscriber().sub);
    assert.throws(() => taps.open({ service: 'a' }, subscriber().sub), TooManyTapsError);
    second.close();
    assert.doesNotThrow(() => taps.open({ service: 'a' }, subscriber().sub));
  });
});

describe('DenialLog', () => {
  const denial = (path: string): DenialEvent => ({
    at: new Date(0).toISOString(), instance: 'spoofed', source: 'frontend', destination: 'spoofed', method: 'GET', path, reason: 'denied',
  });

  it('keeps the most recent denials, newest first, stamped with the reporting proxy', () => {
    const log = new DenialLog(3);
    log.record('backend', 'b1', [denial('/1'), denial('/2')]);
    log.record('admin', 'a1', [denial('/3'), denial('/4')], 5);
    assert.deepEqual(log.list().map((d) => d.path), ['/4', '/3', '/2']);
    assert.deepEqual(log.list('backend').map((d) => [d.path, d.instance, d.destination]), [['/2', 'b1', 'backend']]);
    assert.deepEqual(log.list('admin').map((d) => d.instance), ['a1', 'a1']);
    assert.equal(log.unreported, 5);
  });
});
