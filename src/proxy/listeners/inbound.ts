/**
 * The inbound listener: mTLS only. The client must present a certificate chaining to the trust
 * bundle (checked by the TLS handshake: no cert, another CA, expired → refused) whose structure
 * names exactly one SPIFFE identity of this trust domain (checked right after). ALPN then picks
 * the protocol: h2 (proxy↔proxy HTTP, multiplexed), http/1.1 (upgrades), trellis-tcp (TCP).
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
import { ALPN_H1, ALPN_H2, ALPN_TCP } from '../upstream/peer-pool.js';
import type { DrainState } from './drain.js';
import { HttpIngress } from './ingress.js';
import { HTTP1_SERVER_OPTIONS, answerClientError } from './outbound.js';
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
}

export class InboundListener {
  readonly server: tls.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly ingress: HttpIngress;
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(private readonly ctx: InboundContext) {
    this.ingress = new HttpIngress({ direction: 'inbound', services: ctx.services, config: ctx.config, drain: ctx.drain, selfProtocol: ctx.protocol });
    this.h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000, initialWindowSize: 1 << 20 }, maxSessionMemory: 64 });
    this.h2.on('session', (s) => { this.sessions.add(s); s.on('close', () => this.sessions.delete(s)); });
    this.h2.on('stream', (stream, headers) => {
      const peer = (stream.session?.socket as PeerSocket | undefined)?.[PEER] ?? {};
      this.ingress.handleH2(stream, headers, peer, ctx.services.service);
    });
    this.h1 = http.createServer(HTTP1_SERVER_OPTIONS, (req, res) => {
      const peer = (req.socket as PeerSocket)[PEER] ?? {};
      this.ingress.handleH1(req, res, peer, ctx.services.service);
    });
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: PeerSocket, head: Buffer) => void this.onUpgrade(req, socket, head));
    this.h1.on('clientError', (err: NodeJS.ErrnoException, socket) => answerClientError(err, socket));

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

  private async tunnelTcp(socket: PeerSocket): Promise<void> {
    socket.pause();
    const metrics = this.ctx.services.metrics;
    try {
      const app = await this.ctx.services.app.connectRaw();
      metrics.tcpConnections.labels({ direction: 'inbound', peer: socket[PEER]?.service ?? 'unknown' }).inc();
      metrics.tcpActive.labels({ direction: 'inbound' }).inc();
      this.ctx.drain.begin();
      splice(socket, app, () => {
        metrics.tcpActive.labels({ direction: 'inbound' }).dec();
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
