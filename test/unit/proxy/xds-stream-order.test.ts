/**
 * The config stream handles messages one after the other: a snapshot whose apply waits (a module its
 * features need is loading, ConfigApplier.prepare) is never overtaken by the next message, and the ACKs
 * go out in order. Real HTTP/2 (h2c on loopback) between an XdsStream and a stand-in control plane.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { XdsStream } from '../../../src/proxy/bootstrap/xds-stream.js';
import type { ControlPlaneClient } from '../../../src/proxy/bootstrap/control-plane-client.js';
import type { Logger } from '../../../src/shared/log.js';
import { pollUntil } from '../../../src/shared/poll.js';

const silent: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silent };

describe('XdsStream message order', () => {
  it('applies snapshots and deltas in arrival order when an apply waits, and ACKs them in that order', async () => {
    const received: Array<{ type: string; version?: string }> = [];
    let toProxy: http2.ServerHttp2Stream | undefined;
    const server = http2.createServer();
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' });
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (c: string) => {
        buf += c;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const msg = JSON.parse(buf.slice(0, nl)) as { type: string; version?: string };
          buf = buf.slice(nl + 1);
          received.push(msg);
          if (msg.type === 'hello') toProxy = stream;
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const sessions: http2.ClientHttp2Session[] = [];
    const cp = { connect: async () => { const s = http2.connect(`http://127.0.0.1:${port}`); sessions.push(s); return s; } } as unknown as ControlPlaneClient;

    const started: string[] = [];
    const finished: string[] = [];
    let release!: () => void;
    const slow = new Promise<void>((r) => { release = r; });
    const apply = async (raw: unknown) => {
      const { version, slow: isSlow } = raw as { version: string; slow?: boolean };
      started.push(version);
      if (isSlow) await slow;
      finished.push(version);
      return version;
    };
    const xds = new XdsStream(cp, () => ({ keyPem: '', certPem: '' }), { id: 'i1', service: 'web', address: '127.0.0.1:1', protocol: 'http', labels: {} },
      { apply, applyDelta: apply }, silent);
    try {
      xds.start();
      const down = await pollUntil(() => toProxy, { timeoutMs: 10_000, what: 'the hello' });
      // Counts the lines the proxy side has read: this listener runs after XdsStream's own for each chunk.
      const up = (xds as unknown as { stream?: http2.ClientHttp2Stream }).stream!;
      let lines = 0;
      up.on('data', (c: string) => { lines += c.split('\n').length - 1; });
      // Three messages in one write: the first one's apply waits, the others must wait for it.
      down.write([
        { type: 'snapshot', snapshot: { version: '1', slow: true } },
        { type: 'delta', delta: { version: '2' } },
        { type: 'snapshot', snapshot: { version: '3' } },
      ].map((m) => JSON.stringify(m) + '\n').join(''));
      await pollUntil(() => lines >= 3, { timeoutMs: 10_000, what: 'the three messages to arrive' });
      await pollUntil(() => started.length >= 1, { timeoutMs: 10_000, what: 'the first apply' });
      // The slow apply holds the queue: nothing behind it has started.
      assert.deepEqual(started, ['1']);
      release();
      await pollUntil(() => received.filter((m) => m.type === 'ack').length === 3, { timeoutMs: 10_000, what: 'three ACKs' });
      assert.deepEqual(started, ['1', '2', '3']);
      assert.deepEqual(finished, ['1', '2', '3']);
      assert.deepEqual(received.filter((m) => m.type === 'ack').map((m) => m.version), ['1', '2', '3']);
    } finally {
      xds.stop();
      for (const s of sessions) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
