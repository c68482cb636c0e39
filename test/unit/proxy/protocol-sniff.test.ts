/**
 * The PERMISSIVE inbound sniffer: TLS vs HTTP/1.1 vs h2c vs TCP vs garbage from the first bytes,
 * bytes put back for the next owner, and the timeout of a silent client (fake timers).
 */
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import net from 'node:net';
import { classifyFirstBytes, H2_PREFACE, SNIFF_MAX_BYTES, sniffConnection, type SniffResult } from '../../../src/proxy/listeners/protocol-sniff.js';

/** The first bytes of a real ClientHello, as Node's TLS client writes it. */
async function realClientHello(): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (d: Buffer) => { resolve(d); s.destroy(); })));
  const port = (server.address() as net.AddressInfo).port;
  const client = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  client.on('error', () => {});
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}

describe('classifyFirstBytes', () => {
  it('tells a TLS ClientHello by 0x16 0x03, from two bytes', async () => {
    const hello = await realClientHello();
    assert.equal(classifyFirstBytes(hello, false), 'tls');
    assert.equal(classifyFirstBytes(hello, true), 'tls');
    assert.equal(classifyFirstBytes(hello.subarray(0, 2), false), 'tls');
    assert.equal(classifyFirstBytes(hello.subarray(0, 1), false), 'more');
  });

  it('tells HTTP/1.1 from its first letter, and h2c only from the whole preface', () => {
    assert.equal(classifyFirstBytes(Buffer.from('G'), false), 'http1');
    assert.equal(classifyFirstBytes(Buffer.from('GET / HTTP/1.1\r\n'), false), 'http1');
    assert.equal(classifyFirstBytes(Buffer.from('POST /x HTTP/1.1\r\n'), false), 'http1');
    // "P" and "PR" could still be the preface; "PO"/"PU"/"PA" cannot.
    assert.equal(classifyFirstBytes(Buffer.from('P'), false), 'more');
    assert.equal(classifyFirstBytes(Buffer.from('PRI * HTTP/2.0'), false), 'more');
    assert.equal(classifyFirstBytes(Buffer.from('PUT'), false), 'http1');
    assert.equal(classifyFirstBytes(H2_PREFACE, false), 'h2c');
    assert.equal(classifyFirstBytes(Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0, 4])]), false), 'h2c');
    // Diverging from the preface late: an HTTP/1.1 request line for llhttp to judge.
    assert.equal(classifyFirstBytes(Buffer.from('PRI * HTTP/1.1\r\nhost: x\r\n\r\n'), false), 'http1');
  });

  it('calls anything else garbage for an HTTP service, and plaintext TCP for a tcp service', () => {
    for (const bytes of [[0x00], [0x16, 0x01], [0x80, 0x2e], [0x61], [0x20], [0xff, 0xfe]]) {
      const b = Buffer.from(bytes);
      const expected = bytes[0] === 0x16 && bytes.length < 2 ? 'more' : 'garbage';
      assert.equal(classifyFirstBytes(b, false), expected, `http: ${b.toString('hex')}`);
      assert.equal(classifyFirstBytes(b, true), 'tcp', `tcp: ${b.toString('hex')}`);
    }
    assert.equal(classifyFirstBytes(Buffer.from('get / HTTP/1.1'), false), 'garbage');
    assert.equal(classifyFirstBytes(Buffer.from('GET / HTTP/1.1'), true), 'tcp');
    assert.equal(classifyFirstBytes(Buffer.alloc(0), true), 'more');
  });

  it('always decides within SNIFF_MAX_BYTES', () => {
    const samples = [H2_PREFACE, Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\rX'), Buffer.alloc(64, 0x50), Buffer.alloc(64, 0x16), Buffer.alloc(64, 0)];
    for (const s of samples) for (const tcp of [false, true]) {
      assert.notEqual(classifyFirstBytes(s.subarray(0, SNIFF_MAX_BYTES), tcp), 'more', s.toString('hex'));
    }
  });
});

describe('sniffConnection', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  function sniff(tcp = false, timeoutMs = 10_000): { socket: PassThrough; results: SniffResult[] } {
    const socket = new PassThrough();
    const results: SniffResult[] = [];
    sniffConnection(socket, { tcp, timeoutMs }, (r) => results.push(r));
    return { socket, results };
  }

  /** Lets stream events ('readable', 'end', 'close') run. */
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

  it('decides on the first bytes and puts every byte back, in order, for the next owner', async () => {
    const { socket, results } = sniff();
    socket.write('GE');
    socket.write('T / HTTP/1.1\r\n\r\n');
    await settle();
    assert.deepEqual(results, ['http1']);
    assert.equal(socket.listenerCount('readable'), 0, 'no listener of the sniffer is left');
    assert.equal(socket.read()?.toString(), 'GET / HTTP/1.1\r\n\r\n');
  });

  it('waits for more bytes while the preface is still possible, across writes', async () => {
    const { socket, results } = sniff();
    socket.write(H2_PREFACE.subarray(0, 5));
    await settle();
    assert.deepEqual(results, []);
    socket.write(H2_PREFACE.subarray(5, 20));
    await settle();
    assert.deepEqual(results, []);
    socket.write(Buffer.concat([H2_PREFACE.subarray(20), Buffer.from([0, 0, 6, 4])]));
    await settle();
    assert.deepEqual(results, ['h2c']);
    assert.deepEqual(socket.read(), Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 6, 4])]));
  });

  it('hands a ClientHello to TLS, byte for byte', async () => {
    const hello = await realClientHello();
    const { socket, results } = sniff();
    socket.write(hello.subarray(0, 1));
    await settle();
    assert.deepEqual(results, []);
    socket.write(hello.subarray(1));
    await settle();
    assert.deepEqual(results, ['tls']);
    assert.deepEqual(socket.read(), hello);
  });

  it('reports garbage, and TCP for a tcp service', async () => {
    const http = sniff(false);
    http.socket.write(Buffer.from([0x00, 0x01, 0x02]));
    const tcp = sniff(true);
    tcp.socket.write(Buffer.from([0x00, 0x01, 0x02]));
    await settle();
    assert.deepEqual(http.results, ['garbage']);
    assert.deepEqual(tcp.results, ['tcp']);
    assert.deepEqual(tcp.socket.read(), Buffer.from([0x00, 0x01, 0x02]));
  });

  it('gives up on a silent client after the timeout, once', async () => {
    const { socket, results } = sniff(false, 10_000);
    mock.timers.tick(9_999);
    await settle();
    assert.deepEqual(results, []);
    mock.timers.tick(1);
    assert.deepEqual(results, ['silent']);
    socket.write('GET / HTTP/1.1\r\n\r\n');
    await settle();
    assert.deepEqual(results, ['silent'], 'nothing more after the verdict');
  });

  it('gives up on a client that sends only an undecided prefix', async () => {
    const { socket, results } = sniff(false, 500);
    socket.write('PRI * HTTP');
    await settle();
    mock.timers.tick(500);
    assert.deepEqual(results, ['silent']);
    assert.equal(socket.read()?.toString(), 'PRI * HTTP', 'what was read is still put back');
  });

  it('reports a client that leaves first as closed, and stops its timer', async () => {
    const { socket, results } = sniff();
    socket.write('P');
    socket.end();
    await settle();
    await settle();
    assert.deepEqual(results, ['closed']);
    mock.timers.tick(20_000);
    assert.deepEqual(results, ['closed']);
  });
});
