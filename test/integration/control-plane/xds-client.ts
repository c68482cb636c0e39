/**
 * A minimal proxy-side client of the xDS endpoint for tests: fetch the CA, request certificates,
 * open the NDJSON config stream and read messages as events.
 */
import http2 from 'node:http2';
import tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, importPKCS8 } from 'jose';
import { generateWorkloadKey } from '../../../src/pki/index.js';
import type { ProxyMessage } from '../../../src/api/schema/xds.js';

export interface ClientCert { keyPem: string; certPem: string }

export function connect(xds: string, opts: { ca?: string; cert?: ClientCert } = {}): Promise<http2.ClientHttp2Session> {
  const [host, port] = [xds.slice(0, xds.lastIndexOf(':')), Number(xds.slice(xds.lastIndexOf(':') + 1))];
  const tlsOpts: tls.ConnectionOptions = {
    host, port, ALPNProtocols: ['h2'],
    ...(opts.ca ? { ca: opts.ca, rejectUnauthorized: true, checkServerIdentity: () => undefined } : { rejectUnauthorized: false }),
    ...(opts.cert ? { key: opts.cert.keyPem, cert: opts.cert.certPem } : {}),
  };
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${xds}`, { createConnection: () => tls.connect(tlsOpts) });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

export async function request(xds: string, method: string, path: string, body?: unknown, opts: { ca?: string; cert?: ClientCert } = {}): Promise<{ status: number; json: any; peerCert?: tls.PeerCertificate }> {
  const session = await connect(xds, opts);
  try {
    const peerCert = (session.socket as tls.TLSSocket).getPeerCertificate();
    return await new Promise((resolve, reject) => {
      const stream = session.request({ ':method': method, ':path': path, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) });
      let status = 0;
      let text = '';
      stream.setEncoding('utf8');
      stream.on('response', (h) => { status = Number(h[':status']); });
      stream.on('data', (c: string) => { text += c; });
      stream.on('end', () => {
        try { resolve({ status, json: text ? JSON.parse(text) : undefined, peerCert }); } catch (err) { reject(err); }
      });
      stream.on('error', reject);
      stream.end(body !== undefined ? JSON.stringify(body) : undefined);
    });
  } finally {
    session.close();
  }
}

/** A workload key, and a certificate obtained with `token`. */
export async function enroll(xds: string, token: string, cn?: string): Promise<ClientCert & { caPem: string; spiffeId: string; status: number; json: any }> {
  const { keyPem, csrPem } = await generateWorkloadKey(cn);
  const res = await request(xds, 'POST', '/v1/certificates', { csr: csrPem, token });
  return { keyPem, certPem: res.json?.certPem, caPem: res.json?.caPem, spiffeId: res.json?.spiffeId, status: res.status, json: res.json };
}

export interface ConfigStream {
  status: number;
  messages: any[];
  send(msg: ProxyMessage | Record<string, unknown>): void;
  /** Resolves with the first message (already received or future) matching pred. */
  next(pred?: (m: any) => boolean, timeoutMs?: number): Promise<any>;
  /** Resolves when the server closed the stream. */
  closed: Promise<void>;
  end(): void;
  destroy(): void;
  /** Stops reading (HTTP/2 flow control then stops the sender). */
  pause(): void;
  session: http2.ClientHttp2Session;
}

export async function openStream(xds: string, cert: ClientCert & { caPem: string }): Promise<ConfigStream> {
  const session = await connect(xds, { ca: cert.caPem, cert });
  session.on('error', () => undefined);
  const stream = session.request({ ':method': 'POST', ':path': '/v1/stream', 'content-type': 'application/x-ndjson' });
  stream.on('error', () => undefined);
  const messages: any[] = [];
  const waiters = new Set<{ pred: (m: any) => boolean; resolve: (m: any) => void }>();
  let consumed = 0;
  let buffer = '';
  stream.setEncoding('utf8');
  const status = await new Promise<number>((resolve, reject) => {
    stream.once('response', (h) => resolve(Number(h[':status'])));
    stream.once('error', reject);
  });
  stream.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (!line.trim()) continue;
      let msg: any;
      try { msg = JSON.parse(line); } catch { msg = { unparsable: line }; }
      messages.push(msg);
      for (const w of [...waiters]) if (w.pred(msg)) { waiters.delete(w); w.resolve(msg); }
    }
  });
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  return {
    status,
    messages,
    session,
    closed,
    send: (msg) => { stream.write(JSON.stringify(msg) + '\n'); },
    next(pred = () => true, timeoutMs = 10_000) {
      // Messages are consumed in order: the next unconsumed one that matches.
      for (let i = consumed; i < messages.length; i++) {
        if (pred(messages[i])) { consumed = i + 1; return Promise.resolve(messages[i]); }
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => { waiters.delete(w); reject(new Error(`no matching message within ${timeoutMs}ms; got ${JSON.stringify(messages)}`)); }, timeoutMs);
        const w = { pred, resolve: (m: any) => { clearTimeout(timer); consumed = messages.indexOf(m) + 1; resolve(m); } };
        waiters.add(w);
        void closed.then(() => {
          if (!waiters.has(w)) return;
          waiters.delete(w);
          clearTimeout(timer);
          reject(new Error(`stream closed before a matching message; got ${JSON.stringify(messages)}`));
        });
      });
    },
    end: () => { stream.end(); },
    destroy: () => { session.destroy(); },
    pause: () => { stream.pause(); },
  };
}

/** Signs a join token with the control plane's own signing key read from its data dir (to forge an expired one). */
export async function signWithDataDirKey(dataDir: string, claims: Record<string, unknown>): Promise<string> {
  const state = JSON.parse(await readFile(join(dataDir, 'store.json'), 'utf8')) as { blobs: Record<string, string> };
  const key = await importPKCS8(state.blobs['token-signing-key']!, 'ES256');
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'trellis-join+jwt' }).sign(key);
}

export function hello(id: string, service: string, address = '127.0.0.1:7000', labels: Record<string, string> = {}): ProxyMessage {
  return { type: 'hello', instance: { id, service, address, protocol: 'http', labels } };
}
