/**
 * Talks to the control plane's xDS endpoint (HTTP/2 over TLS): fetches and pins the CA, obtains
 * and renews the SVID, and opens the config stream. After the pin check every connection verifies
 * the control plane's certificate against the CA and its SPIFFE identity.
 *
 * Several control planes may serve the mesh (`--store etcd`): the client knows their addresses (the join
 * token's `cps`, or `--control-plane A,B`). It keeps using the one that answered last; when that one does
 * not answer (refused, timed out), it tries the next, round the list. They share one CA, so one pin and the
 * same identity check hold for all of them.
 */
import http2 from 'node:http2';
import tls from 'node:tls';
import { caPin } from '../../pki/spiffe.js';
import { controlPlaneId, uriSans } from '../../pki/uri-sans.js';
import { CaInfo, CertificateResponse, XDS_PATHS, type CertificateResponse as CertResp } from '../../api/schema/xds.js';
import { parseHostPort } from '../../shared/address.js';

const STREAM_WINDOW = 4 * 1024 * 1024;
const SESSION_WINDOW = 8 * 1024 * 1024;

/** Splits `A,B,...` (or several such) into HOST:PORT addresses, each checked, without duplicates. */
export function parseControlPlaneAddresses(input: string | readonly string[]): string[] {
  const parts = (typeof input === 'string' ? [input] : input).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new Error('no control plane address');
  for (const a of parts) parseHostPort(a, 'control plane address');
  return [...new Set(parts)];
}

export class ControlPlaneClient {
  caPem?: string;
  private addresses: string[];
  private current = 0;
  /** From the token or --control-plane: always kept. */
  private readonly configured: string[];

  constructor(addresses: string | readonly string[], readonly trustDomain: string, private readonly pin: string) {
    this.addresses = parseControlPlaneAddresses(addresses);
    this.configured = [...this.addresses];
  }

  /**
   * The control planes the one in use announced (`control-planes` message): the configured addresses and
   * these; the address in use stays in use. Malformed entries are ignored.
   */
  learnAddresses(announced: readonly string[]): void {
    const inUse = this.address;
    const valid = announced.filter((a) => { try { parseHostPort(a); return true; } catch { return false; } });
    this.addresses = [...new Set([inUse, ...this.configured, ...valid])];
    this.current = 0;
  }

  /** The address in use (the one that answered last). */
  get address(): string { return this.addresses[this.current]!; }

  /** Every known address, the one in use first. */
  get knownAddresses(): string[] {
    return [...this.addresses.slice(this.current), ...this.addresses.slice(0, this.current)];
  }

  /** Moves to the next address: the one in use answered but refused to serve (e.g. shutting down). */
  rotate(): void {
    this.current = (this.current + 1) % this.addresses.length;
  }

  private connectOptions(address: string, clientCert?: { keyPem: string; certPem: string }): tls.ConnectionOptions {
    const { host, port } = parseHostPort(address, 'control plane address');
    const base: tls.ConnectionOptions = { host, port, ALPNProtocols: ['h2'], minVersion: 'TLSv1.2', servername: undefined };
    if (!this.caPem) return { ...base, rejectUnauthorized: false };
    return {
      ...base,
      ca: this.caPem,
      key: clientCert?.keyPem,
      cert: clientCert?.certPem,
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => {
        const sans = uriSans(cert.raw);
        const expected = controlPlaneId(this.trustDomain);
        if (sans.length !== 1 || sans[0] !== expected) return new Error(`control plane certificate does not name ${expected}`);
        return undefined;
      },
    };
  }

  /**
   * Opens an HTTP/2 session (with a client certificate once the proxy has one) to the address in use, or else
   * to the next one that answers; that one stays in use. Fails with every address's error.
   */
  async connect(clientCert?: { keyPem: string; certPem: string }, timeoutMs = 5000): Promise<http2.ClientHttp2Session> {
    const errors: string[] = [];
    const n = this.addresses.length;
    const start = this.current;
    for (let i = 0; i < n; i++) {
      const index = (start + i) % n;
      try {
        const session = await this.connectTo(this.addresses[index]!, clientCert, timeoutMs);
        this.current = index;
        return session;
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    throw new Error(errors.join('; '));
  }

  private connectTo(address: string, clientCert: { keyPem: string; certPem: string } | undefined, timeoutMs: number): Promise<http2.ClientHttp2Session> {
    const opts = this.connectOptions(address, clientCert);
    return new Promise((resolve, reject) => {
      // Large flow-control windows: a snapshot of a big mesh (megabytes) arrives without waiting for a
      // WINDOW_UPDATE every 64 KiB (the HTTP/2 default), which matters most when the proxy is busy.
      const session = http2.connect(`https://${address}`, { createConnection: () => tls.connect(opts), settings: { initialWindowSize: STREAM_WINDOW } });
      const timer = setTimeout(() => { session.destroy(); reject(new Error(`control plane ${address}: connect timed out`)); }, timeoutMs);
      session.once('connect', () => {
        clearTimeout(timer);
        try { session.setLocalWindowSize(SESSION_WINDOW); } catch { /* closing */ }
        resolve(session);
      });
      session.once('error', (err) => { clearTimeout(timer); reject(new Error(`control plane ${address}: ${err.message}`)); });
    });
  }

  /** Fetches the CA and checks it against the token's pin: the only trust-on-first-use step. */
  async fetchPinnedCa(): Promise<string> {
    const session = await this.connect();
    try {
      const body = await request(session, 'GET', XDS_PATHS.ca);
      const info = CaInfo.parse(JSON.parse(body.text));
      const actual = caPin(info.caPem);
      if (actual !== this.pin) throw new Error(`control plane CA pin mismatch: token expects ${this.pin}, server has ${actual}`);
      this.caPem = info.caPem;
      return info.caPem;
    } finally {
      session.close();
    }
  }

  /** Requests a certificate: with the join token (first time) or with the current certificate (renewal). */
  async requestCertificate(csrPem: string, auth: { token: string } | { keyPem: string; certPem: string }): Promise<CertResp> {
    const session = await this.connect('token' in auth ? undefined : auth);
    try {
      const payload = JSON.stringify({ csr: csrPem, ...('token' in auth ? { token: auth.token } : {}) });
      const res = await request(session, 'POST', XDS_PATHS.certificates, payload);
      if (res.status !== 200) {
        let message = res.text;
        try { message = (JSON.parse(res.text) as { message?: string }).message ?? message; } catch { /* not JSON */ }
        throw new Error(`certificate refused by the control plane (${res.status}): ${message}`);
      }
      return CertificateResponse.parse(JSON.parse(res.text));
    } finally {
      session.close();
    }
  }
}

function request(session: http2.ClientHttp2Session, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': method, ':path': path, ...(body ? { 'content-type': 'application/json' } : {}) });
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => { status = Number(h[':status']); });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status, text: Buffer.concat(chunks).toString('utf8') }));
    stream.on('error', reject);
    stream.end(body);
  });
}
