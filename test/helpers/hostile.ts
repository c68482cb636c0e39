/**
 * Raw clients for hostile-input tests: plain TCP to the local listeners, mTLS (with a certificate
 * forged from the test's own CA) to the inbound listener, raw HTTP/2 frames, and the proxy's RSS.
 * Everything goes to 127.0.0.1 only.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { createRootCa, type CaMaterial } from '../../src/pki/ca.js';
import { forgeCertificate } from './certs.js';
import { startControlPlane, type StartedControlPlane } from './processes.js';

/** A control plane signing with a CA the test holds, so it can forge admitted client certificates. */
export async function startControlPlaneWithOwnCa(): Promise<{ cp: StartedControlPlane; ca: CaMaterial }> {
  const ca = await createRootCa('trellis.local');
  const dir = await mkdtemp(join(tmpdir(), 'trellis-ca-'));
  await writeFile(join(dir, 'ca.crt'), ca.certPem);
  await writeFile(join(dir, 'ca.key'), ca.keyPem, { mode: 0o600 });
  const cp = await startControlPlane(['--ca-cert', join(dir, 'ca.crt'), '--ca-key', join(dir, 'ca.key')]);
  return { cp, ca };
}

export interface Target {
  name: string;
  address: string;
  /** Set for the inbound listener: mTLS with this client certificate and ALPN. */
  tls?: { key: string; cert: string; ca: string; alpn: string };
}

export async function inboundTarget(name: string, address: string, ca: CaMaterial, alpn: string): Promise<Target> {
  const client = await forgeCertificate({ issuer: ca, uris: ['spiffe://trellis.local/service/tester'] });
  return { name, address, tls: { key: client.keyPem, cert: client.certPem, ca: ca.certPem, alpn } };
}

/** Connects (TCP, or TLS through the handshake) and resolves with the ready socket. */
export function connect(target: Target): Promise<net.Socket | tls.TLSSocket> {
  const [host, portText] = target.address.split(':');
  const port = Number(portText);
  return new Promise((resolve, reject) => {
    if (target.tls) {
      const s = tls.connect({
        host, port, key: target.tls.key, cert: target.tls.cert, ca: target.tls.ca,
        ALPNProtocols: [target.tls.alpn], rejectUnauthorized: false,
      });
      s.once('secureConnect', () => { s.off('error', reject); resolve(s); });
      s.once('error', reject);
    } else {
      const s = net.connect(port, host);
      s.once('connect', () => { s.off('error', reject); resolve(s); });
      s.once('error', reject);
    }
  });
}

/** Writes raw bytes, returns the status line and headers of the first response (0 when closed without one). */
export async function rawHttp(target: Target, payload: string | Buffer): Promise<{ status: number; head: string }> {
  const s = await connect(target);
  return new Promise((resolve) => {
    let data = '';
    const done = () => {
      const head = data.split('\r\n\r\n')[0] ?? '';
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      resolve({ status: m ? Number(m[1]) : 0, head: head.toLowerCase() });
    };
    s.on('data', (d: Buffer) => { data += d.toString('latin1'); if (data.includes('\r\n\r\n')) s.destroy(); });
    s.on('close', done);
    s.on('error', () => {});
    s.setTimeout(5000, () => s.destroy());
    s.write(payload);
  });
}

/** Resident memory of a process in bytes (Linux /proc). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

// ---- HTTP/2 frames, by hand ----

export const H2 = {
  PREFACE: Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9,
  END_STREAM: 0x1, END_HEADERS: 0x4, ACK: 0x1,
  REFUSED_STREAM: 7, CANCEL: 8,
} as const;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK: a literal header without indexing, new name (RFC 7541 §6.2.2), lengths < 127. */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  if (n.length > 126 || v.length > 126) throw new Error('literal too long for this encoder');
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

/** A request header block: GET (or POST), http, the given path and authority. */
export function requestBlock(path: string, authority: string, method: 'GET' | 'POST' = 'GET'): Buffer {
  return Buffer.concat([
    Buffer.from([method === 'GET' ? 0x82 : 0x83, 0x86]), // :method, :scheme http (static table)
    literal(':path', path),
    literal(':authority', authority),
  ]);
}

/** One header field of `size` bytes of value (split into literals of ≤ 120 bytes). */
export function filler(bytes: number, name = 'x-f'): Buffer {
  const parts: Buffer[] = [];
  for (let left = bytes; left > 0; left -= 120) parts.push(literal(name, 'a'.repeat(Math.min(120, left))));
  return Buffer.concat(parts);
}

/** The connection start: preface, empty SETTINGS, and a large connection window. */
export function clientStart(): Buffer {
  const wu = Buffer.alloc(4);
  wu.writeUInt32BE(0x7fffffff - 65535);
  const settings = Buffer.alloc(6);
  settings.writeUInt16BE(0x4, 0); // SETTINGS_INITIAL_WINDOW_SIZE
  settings.writeUInt32BE(1 << 24, 2);
  return Buffer.concat([H2.PREFACE, frame(H2.SETTINGS, 0, 0, settings), frame(H2.WINDOW_UPDATE, 0, 0, wu)]);
}

export interface H2Event { type: number; flags: number; streamId: number; payload: Buffer }

/**
 * Reads frames from a socket, acking the server's SETTINGS and PINGs. `events` collects every
 * frame; `closed` resolves when the socket closes; `goaway` holds the first GOAWAY's error code.
 */
export function readFrames(socket: Duplex): { events: H2Event[]; closed: Promise<void>; goaway: () => number | undefined; lastStreamId: () => number | undefined; onFrame(f: (e: H2Event) => void): void } {
  const events: H2Event[] = [];
  const listeners: Array<(e: H2Event) => void> = [];
  let buf: Buffer = Buffer.alloc(0);
  let goaway: number | undefined;
  let lastStreamId: number | undefined;
  socket.on('data', (d: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const e: H2Event = { type: buf[3]!, flags: buf[4]!, streamId: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
      buf = buf.subarray(9 + len);
      events.push(e);
      if (e.type === H2.SETTINGS && !(e.flags & H2.ACK)) socket.write(frame(H2.SETTINGS, H2.ACK, 0));
      if (e.type === H2.PING && !(e.flags & H2.ACK)) socket.write(frame(H2.PING, H2.ACK, 0, e.payload));
      if (e.type === H2.GOAWAY && goaway === undefined) { goaway = e.payload.readUInt32BE(4); lastStreamId = e.payload.readUInt32BE(0) & 0x7fffffff; }
      for (const l of listeners) l(e);
    }
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { events, closed, goaway: () => goaway, lastStreamId: () => lastStreamId, onFrame: (f) => listeners.push(f) };
}
