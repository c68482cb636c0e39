/**
 * The inbound listener: mTLS only. The client must present a certificate chaining to the trust
 * bundle (checked by the TLS handshake: no cert, another CA, expired → refused) whose structure
 * names exactly one SPIFFE identity of this trust domain (checked right after). ALPN then picks
 * the protocol: h2 (proxy↔proxy HTTP/2 and gRPC, multiplexed), http/1.1 (proxy↔proxy HTTP/1.1
 * keep-alive, and upgrades), trellis-tcp (TCP).
 */
import http from 'node:http';
import http2 from 'node:http2';
import tls from 'node:tls';
import { checkPeerCertificate } from '../../pki/spiffe.js';
import type { Protocol } from '../../api/schema/common.js';
import { MESH_CIPHERS, type WorkloadIdentity } from '../identity/workload-identity.js';
import type { Peer } from '../pipeline/types.js';
import type { CompiledConfig } from '../runtime/compiled-config.js';
import type { ProxyServices } from '../runtime/services.js';
import { ALPN_H1, ALPN_H2, ALPN_TCP, SESSION_WINDOW_BYTES } from '../upstream/peer-pool.js';
import type { DrainState } from './drain.js';
import { HttpIngress } from './ingress.js';
import { answerClientError, armHttp1Timeouts, h2ServerOptions, http1ServerOptions, type Http1Timeouts, isH2cUpgrade, rawError, serveAsPlainRequest } from './outbound.js';
import { MeshError } from '../../api/errors.js';
import { normaliseRequestPath } from '../authz/path.js';
import { afterHeadParsed, guardH1Request } from '../http/request-guard.js';
import { errorResponse } from '../http/error-response.js';
import { writeH1Response } from '../http/response-writer.js';
import { splice, upgradeRequestHead } from './tunnel.js';
import { PEER_HEADER } from '../filters/inbound-identity.js';

const PEER = Symbol('trellis.peer');
type PeerSocket = tls.TLSSocket & { [PEER]?: Peer };

export interface InboundContext {
  services: ProxyServices;
  identity: WorkloadIdentity;
  config: () => CompiledConfig | undefined;
  drain: DrainState;
  protocol: Protocol;
  http1Timeouts?: Http1Timeouts;
}

export class InboundListener {
  readonly server: tls.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly ingress: HttpIngress;
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(private readonly ctx: InboundContext) {
    this.ingress = new HttpIngress({ direction: 'inbound', services: ctx.services, config: ctx.config, drain: ctx.drain, selfProtocol: ctx.protocol });
    this.h2 = http2.createServer(h2ServerOptions(64, { initialWindowSize: 1 << 20 }));
    this.h2.on('session', (s) => {
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
      // Request bodies: the same connection-level window as the calling side's (peer-pool.ts).
      s.once('connect', () => { try { s.setLocalWindowSize(SESSION_WINDOW_BYTES); } catch { /* closing */ } });
    });
    this.h2.on('stream', (stream, headers) => {
      const peer = (stream.session?.socket as PeerSocket | undefined)?.[PEER] ?? {};
      this.ingress.handleH2(stream, headers, peer, ctx.services.service);
    });
    this.h1 = http.createServer(http1ServerOptions(ctx.http1Timeouts), (req, res) => {
      const refused = guardH1Request(req);
      if (refused) {
        writeH1Response(res, errorResponse(refused, false), { close: true });
        req.resume();
        return;
      }
      const peer = (req.socket as PeerSocket)[PEER] ?? {};
      afterHeadParsed(req, () => this.ingress.handleH1(req, res, peer, ctx.services.service));
    });
    armHttp1Timeouts(this.h1);
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: PeerSocket, head: Buffer) => void this.onUpgrade(req, socket, head));
    this.h1.on('clientError', (err: NodeJS.ErrnoException, socket) => answerClientError(err, socket));
    this.h1.on('connect', (_req, socket: tls.TLSSocket) => socket.end(rawError(new MeshError('BAD_REQUEST', 'CONNECT is refused'))));

    this.server = tls.createServer({
      ...this.tlsOptions(),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [ALPN_H2, ALPN_H1, ALPN_TCP],
      handshakeTimeout: 10_000,
    });
    this.server.on('secureConnection', (socket: PeerSocket) => this.onSecureConnection(socket));
    this.server.on('tlsClientError', () => { /* refused handshake: nothing reaches the app */ });
    ctx.identity.on('rotate', () => this.server.setSecureContext(this.tlsOptions()));
    ctx.drain.onDrain(() => {
      for (const s of this.sessions) s.goaway();
      // HTTP/1.1 peers: idle keep-alive connections close now, busy ones after their response
      // (answered with Connection: close while draining, listeners/ingress.ts).
      this.h1.closeIdleConnections();
      this.server.close();
    });
  }

  private tlsOptions(): tls.SecureContextOptions {
    const svid = this.ctx.identity.current;
    return { key: svid.keyPem, cert: svid.certPem, ca: svid.caPem, minVersion: 'TLSv1.2', ciphers: MESH_CIPHERS, ecdhCurve: 'X25519:P-256' };
  }

  private onSecureConnection(socket: PeerSocket): void {
    socket.on('error', () => {});
    const cert = socket.getPeerCertificate();
    const check = cert?.raw ? checkPeerCertificate(cert.raw, this.ctx.identity.trustDomain) : { ok: false as const, reason: 'no client certificate' };
    if (!socket.authorized || !check.ok) {
      this.ctx.services.log.warn('inbound connection refused', { reason: check.ok ? String(socket.authorizationError) : check.reason, remote: socket.remoteAddress });
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket[PEER] = { identity: check.spiffeId, service: check.service, address: `${socket.remoteAddress}:${socket.remotePort}` };
    switch (socket.alpnProtocol) {
      case ALPN_H2: this.h2.emit('connection', socket); break;
      case ALPN_H1: this.h1.emit('connection', socket); break;
      case ALPN_TCP: void this.tunnelTcp(socket); break;
      default: socket.destroy();
    }
  }

  /**
   * Byte tunnels are authorized with the same engine as HTTP, on the verified identity only:
   * TCP as method "TCP" and path "/", so rules naming HTTP methods or paths do not match it.
   */
  private tunnelAllowed(peer: Peer | undefined, method: string, path: string, headers: Record<string, string | string[] | undefined>): boolean {
    const cfg = this.ctx.config();
    if (!cfg) return false;
    if (cfg.inboundAuthz.allowsEverything) return true;
    const decision = cfg.inboundAuthz.evaluate({
      sourceIdentity: peer?.identity, sourceService: peer?.service, method, path, headers,
      port: cfg.clusters.get(this.ctx.services.service)?.config.port,
    });
    this.ctx.services.metrics.authzDecisions.labels({ policy: decision.policy ?? '-', action: decision.action, decision: decision.decision }).inc();
    return decision.decision === 'allow';
  }

  private async tunnelTcp(socket: PeerSocket): Promise<void> {
    socket.pause();
    const metrics = this.ctx.services.metrics;
    if (!this.tunnelAllowed(socket[PEER], 'TCP', '/', {})) {
      metrics.errors.labels({ direction: 'inbound', code: 'FORBIDDEN' }).inc();
      socket.destroy();
      return;
    }
    try {
      const app = await this.ctx.services.app.connectRaw();
      metrics.tcpConnections.labels({ direction: 'inbound', peer: socket[PEER]?.service ?? 'unknown' }).inc();
      metrics.tcpActive.labels({ direction: 'inbound' }).inc();
      this.ctx.drain.begin();
      splice(socket, app, () => {
        metrics.tcpActive.labels({ direction: 'inbound' }).dec();
        // Counted on the cleartext app side: what the peer sent reached the app, and back.
        metrics.observeTcpClose('inbound', socket[PEER]?.service ?? 'unknown', app.bytesWritten, app.bytesRead);
        this.ctx.drain.end();
      });
      socket.resume();
    } catch {
      metrics.errors.labels({ direction: 'inbound', code: 'UPSTREAM_CONNECT_FAILED' }).inc();
      socket.destroy();
    }
  }

  private async onUpgrade(req: http.IncomingMessage, socket: PeerSocket, head: Buffer): Promise<void> {
    const peer = socket[PEER];
    if (isH2cUpgrade(req)) {
      serveAsPlainRequest(req, socket, head, (r, res) => this.ingress.handleH1(r, res, peer ?? {}, this.ctx.services.service));
      return;
    }
    let path: string;
    try {
      path = normaliseRequestPath(req.url ?? '/');
    } catch {
      socket.end(rawError(new MeshError('BAD_REQUEST', 'malformed path')));
      return;
    }
    const q = path.indexOf('?');
    if (!this.tunnelAllowed(peer, req.method ?? 'GET', q === -1 ? path : path.slice(0, q), req.headers)) {
      this.ctx.services.metrics.errors.labels({ direction: 'inbound', code: 'FORBIDDEN' }).inc();
      socket.end(rawError(new MeshError('FORBIDDEN', 'denied by authorization policy')));
      return;
    }
    req.url = path;
    try {
      const app = await this.ctx.services.app.connectRaw();
      app.write(upgradeRequestHead(req, peer?.identity ? { [PEER_HEADER]: peer.identity } : {}));
      if (head.length) app.write(head);
      splice(socket, app);
    } catch {
      socket.destroy();
    }
  }
}
