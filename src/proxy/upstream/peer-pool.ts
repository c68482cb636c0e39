/**
 * Long-lived mTLS connections to other proxies' inbound listeners. The peer must present the
 * identity of the service it was picked for.
 *
 * - HTTP/2 and gRPC services: one multiplexed HTTP/2 session per peer (`session`).
 * - HTTP/1.1 services: a keep-alive pool of HTTP/1.1 mTLS connections per peer (`h1`), as Istio
 *   keeps HTTP/1.1 between sidecars by default. Node's HTTP/2 client keeps a large share of each
 *   request's objects alive across young-generation GCs (they get promoted and pile up in the old
 *   generation until a full GC), which made the proxy's GC pauses, CPU and memory several times
 *   those of the HTTP/1.1 client (docs/performance.md).
 * - Raw TLS connections serve TCP and WebSocket tunnels (`connectRaw`).
 */
import http2 from 'node:http2';
import tls from 'node:tls';
import { MeshError } from '../../api/errors.js';
import { parseHostPort } from '../../shared/address.js';
import type { WorkloadIdentity } from '../identity/workload-identity.js';
import type { H1Target } from './h1-forward.js';
import { createPool, noteBytesReadOnError, POOL_DEFAULTS, type Dispatcher } from './undici-pool.js';
import type { ProxyMetrics } from '../metrics.js';

export const ALPN_H2 = 'h2';
export const ALPN_H1 = 'http/1.1';
export const ALPN_TCP = 'trellis-tcp';

/**
 * Connection-level HTTP/2 receive window of proxy↔proxy sessions (both ends). The protocol default
 * is 64 KiB for the whole connection, whatever the per-stream window: 32 concurrent 16 KiB responses
 * on one session would wait for WINDOW_UPDATE round trips. A bound on unconsumed data, not an allocation.
 */
export const SESSION_WINDOW_BYTES = 8 << 20;

/** HTTP/1.1 connections per peer; further requests queue in the pool (bounded: PEER_H1_MAX_QUEUED). */
export const PEER_H1_MAX_SOCKETS = 256;
/** Requests waiting for a connection to one peer beyond which new ones fail with CIRCUIT_OPEN. */
export const PEER_H1_MAX_QUEUED = 1024;
/**
 * Idle HTTP/1.1 connections to a peer are closed after this, or TrafficPolicy.timeouts.idle when that
 * is shorter: always well before the inbound listener's own keep-alive timeout (65 s,
 * listeners/outbound.ts), so the calling side closes first and does not send on a connection the peer
 * is closing (a request with a body could not be moved to another endpoint then).
 */
export const PEER_H1_IDLE_MS = 30_000;

/** The HTTP/1.1 pool to one peer: `inflight` counts requests sent or queued on it. */
export interface PeerH1Pool extends H1Target {
  inflight: number;
}

interface PooledSession {
  session: http2.ClientHttp2Session;
  ready: Promise<http2.ClientHttp2Session>;
  /** Set once connected: lets the per-request path skip a promise. */
  connected: boolean;
}

export class PeerPool {
  private readonly sessions = new Map<string, PooledSession>();
  private readonly h1Pools = new Map<string, PeerH1Pool>();
  private closed = false;

  constructor(private readonly identity: WorkloadIdentity, private readonly metrics?: Pick<ProxyMetrics, 'peerConnections'>) {}

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
        this.metrics?.peerConnections.labels({ destination: service, protocol: ALPN_H2 }).inc();
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

  /** The HTTP/1.1 keep-alive mTLS pool to `address` (created on first use), whose certificate must be `service`'s. */
  h1(address: string, service: string, connectTimeoutMs: number, idleTimeoutMs?: number): PeerH1Pool {
    const key = `${service}|${address}`;
    const existing = this.h1Pools.get(key);
    if (existing !== undefined) return existing;
    const { host, port } = parseHostPort(address);
    const idleMs = Math.min(idleTimeoutMs ?? PEER_H1_IDLE_MS, PEER_H1_IDLE_MS);
    const pool = createPool(`https://${address}`, {
      ...POOL_DEFAULTS,
      connections: PEER_H1_MAX_SOCKETS,
      keepAliveTimeout: idleMs,
      keepAliveMaxTimeout: idleMs,
      // The pool hands a connection over once the handshake is done (and the peer proved `service`):
      // a refused peer leaves the request's body unread.
      connect: (_opts, callback) => {
        if (this.closed) { callback(new MeshError('UPSTREAM_CONNECT_FAILED', 'proxy is shutting down'), null); return; }
        const socket = this.dial(host, port, service, ALPN_H1, connectTimeoutMs);
        noteBytesReadOnError(socket);
        let settled = false;
        socket.once('secureConnect', () => {
          if (socket.destroyed) return; // refused by dial (wrong ALPN): its error follows
          settled = true;
          this.metrics?.peerConnections.labels({ destination: service, protocol: ALPN_H1 }).inc();
          callback(null, socket);
        });
        socket.once('error', (err) => { if (!settled) { settled = true; callback(err, null); } });
      },
    });
    const entry: PeerH1Pool = { pool, label: `peer ${address}`, headKeepsConnection: true, inflight: 0 };
    this.h1Pools.set(key, entry);
    return entry;
  }

  /** A raw mTLS connection to a peer with the given ALPN (TCP or HTTP/1.1 tunnels). */
  connectRaw(address: string, service: string, alpn: string, connectTimeoutMs: number): Promise<tls.TLSSocket> {
    const { host, port } = parseHostPort(address);
    return new Promise((resolve, reject) => {
      const socket = this.dial(host, port, service, alpn, connectTimeoutMs);
      socket.once('secureConnect', () => { if (!socket.destroyed) resolve(socket); });
      socket.once('error', (err) => reject(new MeshError('UPSTREAM_CONNECT_FAILED', `connect to ${address}: ${err.message}`)));
    });
  }

  /**
   * One mTLS connection to a peer: the peer must be `service` and agree to `alpn`, within
   * `connectTimeoutMs` (else the socket is destroyed with an error saying which); no Nagle.
   */
  private dial(host: string, port: number, service: string, alpn: string, connectTimeoutMs: number): tls.TLSSocket {
    const socket = tls.connect({ host, port, ...this.identity.clientOptions(service, [alpn]) });
    socket.setNoDelay(true);
    const timer = setTimeout(() => socket.destroy(new Error(`timed out after ${connectTimeoutMs}ms`)), connectTimeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      if (socket.alpnProtocol !== alpn) socket.destroy(new Error(`peer does not speak ${alpn}`));
    });
    socket.once('close', () => clearTimeout(timer));
    return socket;
  }

  /** Drops pooled sessions and connections to addresses no longer in any cluster (requests in flight finish). */
  retain(liveAddresses: ReadonlySet<string>): void {
    for (const [key, pooled] of this.sessions) {
      const address = key.slice(key.indexOf('|') + 1);
      if (!liveAddresses.has(address)) {
        this.sessions.delete(key);
        pooled.session.close();
      }
    }
    for (const [key, pool] of this.h1Pools) {
      if (!liveAddresses.has(key.slice(key.indexOf('|') + 1))) {
        this.h1Pools.delete(key);
        closeGracefully(pool.pool);
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const pooled of this.sessions.values()) pooled.session.close();
    this.sessions.clear();
    for (const pool of this.h1Pools.values()) closeGracefully(pool.pool);
    this.h1Pools.clear();
  }
}

/** Closes a pool: idle connections now, busy ones once their requests (queued ones included) are done. */
function closeGracefully(pool: Dispatcher): void {
  pool.close().catch(() => {});
}
