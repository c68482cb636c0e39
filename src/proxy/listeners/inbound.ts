/**
 * The inbound listener. Under MeshConfig `mtls: STRICT` (the default, and the mode before the first
 * config arrives) it is mTLS only: the client must present a certificate chaining to the trust
 * bundle (checked by the TLS handshake: no cert, another CA, expired → refused) whose structure
 * names exactly one SPIFFE identity of this trust domain (checked right after). ALPN then picks
 * the protocol: h2 (proxy↔proxy HTTP/2 and gRPC, multiplexed), http/1.1 (proxy↔proxy HTTP/1.1
 * keep-alive, and upgrades), trellis-tcp (TCP).
 *
 * Under `mtls: PERMISSIVE` the same port also takes plaintext (Istio's PeerAuthentication PERMISSIVE,
 * for migrating clients from outside the mesh): each new connection's first bytes are sniffed
 * (protocol-sniff.ts): a TLS ClientHello goes the mTLS way above, unchanged; HTTP/1.1 and h2c
 * (prior knowledge) go to the same HTTP servers with NO peer identity (no x-trellis-peer; client
 * copies stripped as always; authorization sees no identity); a tcp service's other bytes are
 * tunnelled. The mode is chosen once per config version (`configApplied`): the accept function is
 * swapped, so STRICT never reads a byte before TLS. Switching back to STRICT closes the plaintext
 * connections (HTTP/1.1 after the response under way, h2c with GOAWAY, tunnels at once); mTLS
 * connections are never touched by a switch.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
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
import type { MtlsMode } from '../authz/engine.js';
import { DEFAULT_SNIFF_TIMEOUT_MS, sniffConnection, type SniffResult } from './protocol-sniff.js';

const PEER = Symbol('trellis.peer');
/** Set on a plaintext connection (PERMISSIVE): what it carries, for closing it when STRICT comes back. */
const PLAINTEXT = Symbol('trellis.plaintext');
type PlaintextKind = 'http/1.1' | 'h2c' | 'tcp';
/** Idle plaintext h2c sessions close after this long (the HTTP/1.1 servers' keepAliveTimeout). */
const PLAINTEXT_H2_IDLE_MS = 65_000;
/** Back to STRICT: what a plaintext exchange under way may still take before its connection is cut (the default drain timeout). */
const PLAINTEXT_CLOSE_GRACE_MS = 15_000;
type PeerSocket = net.Socket & { [PEER]?: Peer; [PLAINTEXT]?: PlaintextKind };

export interface InboundContext {
  services: ProxyServices;
  identity: WorkloadIdentity;
  config: () => CompiledConfig | undefined;
  drain: DrainState;
  protocol: Protocol;
  http1Timeouts?: Http1Timeouts;
  /** PERMISSIVE: how long a new connection may send nothing decisive (protocol-sniff.ts). Default 10s. */
  sniffTimeoutMs?: number;
}

export class InboundListener {
  /** What listens on the inbound port; hands each connection to `accept`. */
  readonly server: net.Server;
  private readonly tls: tls.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly ingress: HttpIngress;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** Open plaintext connections (PERMISSIVE only; empty under STRICT). */
  private readonly plaintext = new Set<PeerSocket>();
  /** Their h2c sessions (a session's socket cannot be read any more once it is destroyed). */
  private readonly plaintextSessions = new Set<http2.ServerHttp2Session>();
  private mode: MtlsMode = 'STRICT';
  /** The accept function of the current mode: STRICT → straight to TLS; PERMISSIVE → sniff first. */
  private accept: (socket: net.Socket) => void = (socket) => this.tls.emit('connection', socket);

  constructor(private readonly ctx: InboundContext) {
    this.ingress = new HttpIngress({ direction: 'inbound', services: ctx.services, config: ctx.config, drain: ctx.drain, selfProtocol: ctx.protocol });
    this.h2 = http2.createServer(h2ServerOptions(64, { initialWindowSize: 1 << 20 }));
    this.h2.on('session', (s) => {
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
      // Request bodies: the same connection-level window as the calling side's (peer-pool.ts).
      s.once('connect', () => { try { s.setLocalWindowSize(SESSION_WINDOW_BYTES); } catch { /* closing */ } });
      // A plaintext h2c session (PERMISSIVE) is anyone's: closed (gracefully) after the HTTP/1.1 keep-alive
      // time without a frame either way, as a mesh peer's is not.
      if ((s.socket as PeerSocket | undefined)?.[PLAINTEXT] === 'h2c') {
        this.plaintextSessions.add(s);
        s.on('close', () => this.plaintextSessions.delete(s));
        s.setTimeout(PLAINTEXT_H2_IDLE_MS, () => s.close());
      }
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
    this.h1.on('connect', (_req, socket: net.Socket) => socket.end(rawError(new MeshError('BAD_REQUEST', 'CONNECT is refused'))));

    // The TLS server never listens: the port's net.Server hands it connections (net.Server does the
    // same internally), under STRICT at once, under PERMISSIVE after the sniff put the bytes back.
    this.tls = tls.createServer({
      ...this.tlsOptions(),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [ALPN_H2, ALPN_H1, ALPN_TCP],
      handshakeTimeout: 10_000,
    });
    this.tls.on('secureConnection', (socket: tls.TLSSocket) => this.onSecureConnection(socket));
    this.tls.on('tlsClientError', () => { /* refused handshake: nothing reaches the app */ });
    this.server = net.createServer((socket) => this.accept(socket));
    ctx.identity.on('rotate', () => this.tls.setSecureContext(this.tlsOptions()));
    const current = ctx.config();
    if (current) this.configApplied(current);
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

  /** The mTLS mode of a new config version: swaps the accept function when it changed (once per version). */
  configApplied(config: CompiledConfig): void {
    const mode = config.snapshot.meshConfig.mtls;
    if (mode === this.mode) return;
    this.mode = mode;
    this.ctx.services.log.info('inbound mTLS mode', { mtls: mode, version: config.version });
    if (mode === 'PERMISSIVE') {
      this.accept = (socket) => this.sniff(socket);
    } else {
      this.accept = (socket) => this.tls.emit('connection', socket);
      try {
        this.closePlaintext();
      } catch (err) { // never let it fail the version being applied (called from ConfigApplier's onApplied)
        this.ctx.services.log.error('closing plaintext connections failed', { error: (err as Error).message });
      }
    }
  }

  private sniff(socket: net.Socket): void {
    socket.on('error', () => {});
    sniffConnection(socket, { tcp: this.ctx.protocol === 'tcp', timeoutMs: this.ctx.sniffTimeoutMs ?? DEFAULT_SNIFF_TIMEOUT_MS }, (result) => this.sniffed(socket, result));
  }

  private sniffed(socket: PeerSocket, result: SniffResult): void {
    if (result === 'tls') {
      this.tls.emit('connection', socket);
      return;
    }
    const metrics = this.ctx.services.metrics;
    // A silent client of a tcp service may speak a server-first protocol: it is tunnelled once the sniff
    // gives up (Envoy's continue_on_listener_filters_timeout). Silent HTTP clients are closed.
    const kind: PlaintextKind | undefined = result === 'http1' ? 'http/1.1' : result === 'h2c' ? 'h2c'
      : result === 'tcp' || (result === 'silent' && this.ctx.protocol === 'tcp') ? 'tcp' : undefined;
    if (kind === undefined || this.mode !== 'PERMISSIVE') {
      // STRICT arrived while this connection was being sniffed: plaintext is refused again.
      const reason = kind === undefined ? result : 'strict';
      metrics.inboundSniffFailures.labels({ reason }).inc();
      if (reason === 'garbage') socket.end(rawError(new MeshError('BAD_REQUEST', 'neither TLS nor HTTP')));
      else socket.destroy();
      return;
    }
    metrics.inboundPlaintextConnections.labels({ protocol: kind }).inc();
    socket.setNoDelay(true);
    // No identity: only the address, for logs. Authorization and x-trellis-peer see none.
    socket[PEER] = { address: `${socket.remoteAddress}:${socket.remotePort}` };
    socket[PLAINTEXT] = kind;
    this.plaintext.add(socket);
    socket.once('close', () => this.plaintext.delete(socket));
    switch (kind) {
      case 'http/1.1': this.h1.emit('connection', socket); break;
      case 'h2c': this.h2.emit('connection', socket); break;
      case 'tcp': void this.tunnelTcp(socket); break;
    }
  }

  /**
   * Back to STRICT: no plaintext connection outlives the switch. HTTP/1.1: an idle one closes now, a busy
   * one after the response under way (Connection: close); h2c: GOAWAY, the streams under way finish;
   * both within PLAINTEXT_CLOSE_GRACE_MS, else cut. TCP tunnels and upgraded (WebSocket) connections
   * close at once.
   */
  private closePlaintext(): void {
    const cutLater = (socket: net.Socket) => {
      const timer = setTimeout(() => socket.destroy(), PLAINTEXT_CLOSE_GRACE_MS);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    };
    for (const socket of this.plaintext) {
      if (socket[PLAINTEXT] === 'h2c') { cutLater(socket); continue; }
      if (socket[PLAINTEXT] === 'tcp') { socket.destroy(); continue; }
      const res = (socket as { _httpMessage?: http.ServerResponse | null })._httpMessage;
      if (!res) { socket.destroy(); continue; }
      if (!res.headersSent) res.shouldKeepAlive = false;
      res.once('finish', () => socket.end());
      cutLater(socket);
    }
    for (const s of this.plaintextSessions) s.close();
  }

  private onSecureConnection(socket: tls.TLSSocket & PeerSocket): void {
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
