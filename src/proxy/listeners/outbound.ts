/**
 * Local listeners the app talks to in cleartext:
 *   - `--outbound NAME=HOST:PORT`: everything on it goes to service NAME. HTTP/1.1 and HTTP/2
 *     (prior knowledge, as gRPC clients use) are told apart by the connection preface; a tcp
 *     service's connections are tunnelled as bytes.
 *   - `--http-proxy HOST:PORT`: one HTTP proxy for all services; the Host header (or the
 *     absolute-form URL an HTTP_PROXY client sends) names the service.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { MeshError } from '../../api/errors.js';
import { errorResponse } from '../http/error-response.js';
import { writeH1Response } from '../http/response-writer.js';
import { afterHeadParsed, guardH1Request } from '../http/request-guard.js';
import type { Peer } from '../pipeline/types.js';
import type { CompiledConfig } from '../runtime/compiled-config.js';
import type { ProxyServices } from '../runtime/services.js';
import { ALPN_H1, ALPN_TCP } from '../upstream/peer-pool.js';
import type { DrainState } from './drain.js';
import { HttpIngress } from './ingress.js';
import { splice, upgradeRequestHead } from './tunnel.js';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Slowloris bounds of the HTTP/1.1 servers (`--header-timeout`, `--request-timeout`). */
export interface Http1Timeouts {
  /** Whole request head must arrive within this (408 + close otherwise). Default 20s. */
  headersTimeoutMs: number;
  /** Whole request, body included, must arrive within this (408 + close otherwise). Default 300s. */
  requestTimeoutMs: number;
}
export const DEFAULT_HTTP1_TIMEOUTS: Http1Timeouts = { headersTimeoutMs: 20_000, requestTimeoutMs: 300_000 };

/** HTTP/1.1 server options shared by every listener (connections are handed to them after sniffing/TLS). */
export function http1ServerOptions(t: Http1Timeouts = DEFAULT_HTTP1_TIMEOUTS): http.ServerOptions {
  return {
    maxHeaderSize: 60 * 1024,
    requireHostHeader: true,
    keepAliveTimeout: 65_000,
    headersTimeout: t.headersTimeoutMs,
    requestTimeout: t.requestTimeoutMs,
    // Node checks both timeouts on this period (default 30s): keep it well under the shorter one.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(t.headersTimeoutMs, t.requestTimeoutMs) / 4))),
    insecureHTTPParser: false,
  };
}
export const HTTP1_SERVER_OPTIONS: http.ServerOptions = http1ServerOptions();

/**
 * Node starts the periodic headersTimeout/requestTimeout check when a server emits 'listening'. The
 * proxy's HTTP servers never listen (connections are handed to them after sniffing or TLS), so
 * without this the slowloris bounds were never enforced. Arms the check; returns the server.
 */
export function armHttp1Timeouts<T extends http.Server>(server: T): T {
  server.emit('listening');
  return server;
}

/**
 * Explicit HTTP/2 server bounds (docs/security.md). nghttp2 refuses streams over
 * maxConcurrentStreams with RST_STREAM(REFUSED_STREAM); Node ends a session with GOAWAY after
 * maxSessionRejectedStreams refusals or maxSessionInvalidFrames invalid frames; header blocks over
 * maxHeaderListSize are refused (431 / RST_STREAM) and CONTINUATION floods end the session (nghttp2 ≥ 1.61).
 */
export function h2ServerOptions(maxSessionMemoryMb: number, settings: http2.Settings = {}): http2.ServerOptions {
  return {
    settings: { maxConcurrentStreams: 1000, maxHeaderListSize: 64 * 1024, ...settings },
    maxSessionMemory: maxSessionMemoryMb,
    maxHeaderListPairs: 128,
    maxSessionRejectedStreams: 100,
    maxSessionInvalidFrames: 1000,
  };
}

export interface OutboundContext {
  services: ProxyServices;
  config: () => CompiledConfig | undefined;
  drain: DrainState;
  http1Timeouts?: Http1Timeouts;
}

export class OutboundListener {
  readonly server: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly ingress: HttpIngress;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly self: Peer;

  /** `destination` fixed for --outbound; undefined for --http-proxy (taken from each request). */
  constructor(private readonly ctx: OutboundContext, private readonly destination: string | undefined) {
    this.self = { service: ctx.services.service, identity: ctx.services.spiffeId };
    this.ingress = new HttpIngress({ direction: 'outbound', services: ctx.services, config: ctx.config, drain: ctx.drain, selfProtocol: 'http' });
    this.h1 = armHttp1Timeouts(http.createServer(http1ServerOptions(ctx.http1Timeouts), (req, res) => this.onH1(req, res)));
    this.h1.on('upgrade', (req, socket, head) => void this.onUpgrade(req, socket as net.Socket, head));
    this.h1.on('clientError', (err: NodeJS.ErrnoException, socket) => answerClientError(err, socket));
    // CONNECT tunnels are never opened: the mesh carries named services, not arbitrary addresses.
    this.h1.on('connect', (_req, socket: net.Socket) => socket.end(rawError(new MeshError('BAD_REQUEST', 'CONNECT is refused: name a mesh service'))));
    this.h2 = http2.createServer(h2ServerOptions(32));
    this.h2.on('session', (s) => { this.sessions.add(s); s.on('close', () => this.sessions.delete(s)); });
    this.h2.on('stream', (stream, headers) => {
      const dest = this.destination ?? serviceFromAuthority(String(headers[':authority'] ?? ''));
      this.ingress.handleH2(stream, headers, this.self, dest);
    });
    this.server = net.createServer((socket) => this.onConnection(socket));
    ctx.drain.onDrain(() => {
      for (const s of this.sessions) s.goaway();
      this.server.close();
    });
  }

  private onConnection(socket: net.Socket): void {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    if (this.destination) {
      const cluster = this.ctx.config()?.clusters.get(this.destination);
      if (cluster?.config.protocol === 'tcp') {
        void this.tunnelTcp(socket, this.destination);
        return;
      }
    }
    socket.once('readable', () => {
      const first: Buffer | null = socket.read(Math.min(socket.readableLength, H2_PREFACE.length)) ?? socket.read();
      if (!first) { socket.destroy(); return; }
      socket.unshift(first);
      const server = first.length >= 3 && first.subarray(0, 3).equals(H2_PREFACE.subarray(0, 3)) ? this.h2 : this.h1;
      server.emit('connection', socket);
    });
  }

  private onH1(req: http.IncomingMessage, res: http.ServerResponse): void {
    const refused = guardH1Request(req);
    if (refused) {
      writeH1Response(res, errorResponse(refused, false), { close: true });
      req.resume();
      return;
    }
    let path = req.url ?? '/';
    let authority = req.headers.host ?? '';
    if (!path.startsWith('/')) {
      // Absolute form (HTTP_PROXY clients) or CONNECT: only mesh services, only http.
      let url: URL;
      try { url = new URL(path); } catch { url = new URL('http://invalid'); }
      if (req.method === 'CONNECT' || url.protocol !== 'http:') {
        writeH1Response(res, errorResponse(new MeshError('BAD_REQUEST', 'CONNECT and non-http absolute URLs are refused: name a mesh service'), false), { close: true });
        return;
      }
      path = url.pathname + url.search;
      authority = url.host;
    }
    const dest = this.destination ?? serviceFromAuthority(authority);
    afterHeadParsed(req, () => this.ingress.handleH1(req, res, this.self, dest, path, authority || dest));
  }

  /** WebSocket and other HTTP/1.1 upgrades ride a dedicated mTLS connection (ALPN http/1.1). */
  private async onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    if (isH2cUpgrade(req)) {
      // Never honoured: served as the plain HTTP/1.1 request it also is, Upgrade stripped.
      serveAsPlainRequest(req, socket, head, (r, res) => this.onH1(r, res));
      return;
    }
    const dest = this.destination ?? serviceFromAuthority(req.headers.host ?? '');
    const cluster = this.ctx.config()?.clusters.get(dest);
    const ep = cluster?.balancer().pick({ now: performance.now() });
    if (!cluster || !ep) {
      socket.end(rawError(new MeshError(cluster ? 'NO_HEALTHY_UPSTREAM' : 'NO_ROUTE')));
      return;
    }
    try {
      const upstream = await this.ctx.services.peers.connectRaw(ep.address, cluster.name, ALPN_H1, cluster.connectTimeoutMs);
      upstream.write(upgradeRequestHead(req));
      if (head.length) upstream.write(head);
      splice(socket, upstream);
    } catch (err) {
      socket.end(rawError(err instanceof MeshError ? err : new MeshError('UPSTREAM_CONNECT_FAILED')));
    }
  }

  private async tunnelTcp(socket: net.Socket, service: string): Promise<void> {
    const metrics = this.ctx.services.metrics;
    socket.pause();
    const tried = new Set<import('../upstream/endpoint-state.js').EndpointState>();
    for (let attempt = 0; attempt < 3; attempt++) {
      const backend = this.ctx.config()?.tcpBackend(service);
      const ep = backend?.cluster.balancer(backend.subset).pick({ now: performance.now(), exclude: tried });
      if (!backend || !ep || tried.has(ep)) break;
      tried.add(ep);
      try {
        const upstream = await this.ctx.services.peers.connectRaw(ep.address, backend.cluster.name, ALPN_TCP, backend.cluster.connectTimeoutMs);
        metrics.tcpConnections.labels({ direction: 'outbound', peer: backend.cluster.name }).inc();
        metrics.tcpActive.labels({ direction: 'outbound' }).inc();
        ep.inflight++;
        this.ctx.drain.begin();
        const idle = backend.cluster.idleTimeoutMs;
        if (idle) {
          // No bytes either way for that long: close both sides (splice closes the other).
          socket.setTimeout(idle, () => socket.destroy());
          upstream.setTimeout(idle, () => upstream.destroy());
        }
        splice(socket, upstream, () => {
          ep.inflight--;
          metrics.tcpActive.labels({ direction: 'outbound' }).dec();
          metrics.observeTcpClose('outbound', backend.cluster.name, socket.bytesRead, socket.bytesWritten);
          this.ctx.drain.end();
        });
        socket.resume();
        return;
      } catch {
        backend.cluster.record(ep, 'gateway-error');
      }
    }
    metrics.errors.labels({ direction: 'outbound', code: 'UPSTREAM_CONNECT_FAILED' }).inc();
    socket.destroy();
  }
}

/** "catalog", "catalog:8080", "catalog.mesh:80" → "catalog". */
export function serviceFromAuthority(authority: string): string {
  let host = authority;
  const colon = host.lastIndexOf(':');
  if (colon > 0 && !host.endsWith(']')) host = host.slice(0, colon);
  const dot = host.indexOf('.');
  return (dot > 0 ? host.slice(0, dot) : host).toLowerCase();
}

export function rawError(err: MeshError): string {
  const body = JSON.stringify({ error: err.code, message: err.message });
  return `HTTP/1.1 ${err.status} ${http.STATUS_CODES[err.status] ?? 'Error'}\r\nx-trellis-error: ${err.code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** Malformed HTTP/1.1 from a client: a clear 400/413/431 and the connection closed. */
export function answerClientError(err: NodeJS.ErrnoException, socket: net.Socket | import('node:stream').Duplex): void {
  if (!socket.writable) { socket.destroy(); return; }
  // A response already under way (a guard's refusal, or a slow body cut by requestTimeout): never
  // interleave a second one; flush what was written and close.
  if ((socket as { _httpMessage?: { _headerSent?: boolean } })._httpMessage?._headerSent === true) { socket.end(); return; }
  const code = err.code ?? '';
  let meshErr: MeshError;
  if (code === 'HPE_HEADER_OVERFLOW') meshErr = new MeshError('REQUEST_TOO_LARGE', 'request headers too large', { status: 431 });
  else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') meshErr = new MeshError('BAD_REQUEST', 'request timed out', { status: 408 });
  else meshErr = new MeshError('BAD_REQUEST', `malformed HTTP request (${code || err.message})`);
  socket.end(rawError(meshErr));
}

export function isH2cUpgrade(req: http.IncomingMessage): boolean {
  return /(^|,)\s*h2c\s*(,|$)/i.test(String(req.headers.upgrade ?? ''));
}

/** Hands an upgrade request back to the normal request path on its socket, answering once and closing. */
export function serveAsPlainRequest(
  req: http.IncomingMessage, socket: net.Socket, head: Buffer,
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): void {
  if (head.length) socket.unshift(head);
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.on('finish', () => socket.end());
  handler(req, res);
}
