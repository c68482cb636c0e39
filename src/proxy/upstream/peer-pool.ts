/**
 * Long-lived mTLS connections to other proxies' inbound listeners. HTTP traffic to one peer is
 * multiplexed over one HTTP/2 session; raw TLS connections serve TCP and WebSocket tunnels.
 * The peer must present the identity of the service it was picked for.
 */
import http2 from 'node:http2';
import tls from 'node:tls';
import { MeshError } from '../../api/errors.js';
import { parseHostPort } from '../../shared/address.js';
import type { WorkloadIdentity } from '../identity/workload-identity.js';

export const ALPN_H2 = 'h2';
export const ALPN_H1 = 'http/1.1';
export const ALPN_TCP = 'trellis-tcp';

/**
 * Connection-level HTTP/2 receive window of proxy↔proxy sessions (both ends). The protocol default
 * is 64 KiB for the whole connection, whatever the per-stream window: 32 concurrent 16 KiB responses
 * on one session would wait for WINDOW_UPDATE round trips. A bound on unconsumed data, not an allocation.
 */
export const SESSION_WINDOW_BYTES = 8 << 20;

interface PooledSession {
  session: http2.ClientHttp2Session;
  ready: Promise<http2.ClientHttp2Session>;
  /** Set once connected: lets the per-request path skip a promise. */
  connected: boolean;
}

export class PeerPool {
  private readonly sessions = new Map<string, PooledSession>();
  private closed = false;

  constructor(private readonly identity: WorkloadIdentity) {}

  /** The pooled session to `address` when it is connected and usable now, else undefined (then call session()). */
  connectedSession(address: string, service: string): http2.ClientHttp2Session | undefined {
    const pooled = this.sessions.get(`${service}|${address}`);
    return pooled?.connected && !pooled.session.closed && !pooled.session.destroyed ? pooled.session : undefined;
  }

  /** A connected HTTP/2 session to `address`, whose certificate must be `service`'s. */
  session(address: string, service: string, connectTimeoutMs: number, idleTimeoutMs?: number): Promise<http2.ClientHttp2Session> {
    const key = `${service}|${address}`;
    const pooled = this.sessions.get(key);
    if (pooled && !pooled.session.closed && !pooled.session.destroyed) return pooled.ready;
    return this.open(key, address, service, connectTimeoutMs, idleTimeoutMs);
  }

  private open(key: string, address: string, service: string, connectTimeoutMs: number, idleTimeoutMs?: number): Promise<http2.ClientHttp2Session> {
    if (this.closed) return Promise.reject(new MeshError('UPSTREAM_CONNECT_FAILED', 'proxy is shutting down'));
    const { host, port } = parseHostPort(address);
    const session = http2.connect(`https://${address}`, {
      createConnection: () => {
        const socket = tls.connect({ host, port, ...this.identity.clientOptions(service, [ALPN_H2]) });
        // No Nagle: a request's HEADERS and DATA frames are separate small writes; with Nagle the second
        // waits for the peer's delayed ACK (40 ms on Linux), which capped each session's request rate.
        socket.setNoDelay(true);
        return socket;
      },
      settings: { enablePush: false, initialWindowSize: 1 << 20 },
      maxSessionMemory: 64,
    });
    session.setMaxListeners(0);
    if (idleTimeoutMs) {
      // No frames for that long: close gracefully (streams still open finish first).
      session.setTimeout(idleTimeoutMs, () => session.close());
    }
    const forget = () => {
      if (this.sessions.get(key)?.session === session) this.sessions.delete(key);
    };
    session.on('close', forget);
    session.on('goaway', forget);
    session.on('error', forget);
    const ready = new Promise<http2.ClientHttp2Session>((resolve, reject) => {
      const timer = setTimeout(() => {
        session.destroy();
        reject(new MeshError('UPSTREAM_CONNECT_FAILED', `connect to ${address} timed out after ${connectTimeoutMs}ms`));
      }, connectTimeoutMs);
      session.once('connect', () => {
        clearTimeout(timer);
        try { session.setLocalWindowSize(SESSION_WINDOW_BYTES); } catch { /* closing already */ }
        pooled.connected = true;
        resolve(session);
      });
      session.once('error', (err) => {
        clearTimeout(timer);
        reject(new MeshError('UPSTREAM_CONNECT_FAILED', `connect to ${address}: ${err.message}`));
      });
    });
    ready.catch(() => {});
    const pooled: PooledSession = { session, ready, connected: false };
    this.sessions.set(key, pooled);
    return ready;
  }

  /** A raw mTLS connection to a peer with the given ALPN (TCP or HTTP/1.1 tunnels). */
  connectRaw(address: string, service: string, alpn: string, connectTimeoutMs: number): Promise<tls.TLSSocket> {
    const { host, port } = parseHostPort(address);
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host, port, ...this.identity.clientOptions(service, [alpn]) });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new MeshError('UPSTREAM_CONNECT_FAILED', `connect to ${address} timed out after ${connectTimeoutMs}ms`));
      }, connectTimeoutMs);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        if (socket.alpnProtocol !== alpn) {
          socket.destroy();
          reject(new MeshError('UPSTREAM_CONNECT_FAILED', `peer ${address} does not speak ${alpn}`));
          return;
        }
        socket.setNoDelay(true);
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new MeshError('UPSTREAM_CONNECT_FAILED', `connect to ${address}: ${err.message}`));
      });
    });
  }

  /** Drops pooled sessions to addresses no longer in any cluster. */
  retain(liveAddresses: ReadonlySet<string>): void {
    for (const [key, pooled] of this.sessions) {
      const address = key.slice(key.indexOf('|') + 1);
      if (!liveAddresses.has(address)) {
        this.sessions.delete(key);
        pooled.session.close();
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const pooled of this.sessions.values()) pooled.session.close();
    this.sessions.clear();
  }
}
