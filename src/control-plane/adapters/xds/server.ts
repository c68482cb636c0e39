/**
 * The proxy-facing endpoint (--xds): HTTP/2 over TLS with a CA-issued serving certificate
 * (spiffe://TD/control-plane). Routes (see src/api/schema/xds.ts):
 *
 *   GET  /v1/ca            CaInfo (no client certificate needed: the proxy checks it against its token's pin)
 *   POST /v1/certificates  CSR + join token (first time) or CSR + client certificate (renewal)
 *   POST /v1/stream        client certificate required; NDJSON both ways: hello/ack/nack/cert/stats/goodbye in,
 *                          snapshot/delta/error out. Every config change is pushed as a new version: the
 *                          shared part compiled and serialised once per version (core/compiler.ts), the same
 *                          bytes written to every proxy; a delta from the previous version to proxies that
 *                          take deltas; a proxy still receiving an older version gets only the newest.
 *                          Live tap: tap-start/tap-stop out, tap batches in (core/taps.ts); the denials carried
 *                          by stats messages go to core/denials.ts.
 */
import http2 from 'node:http2';
import os from 'node:os';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { checkPeerCertificate } from '../../../pki/index.js';
import { DELTA_BASE_MISMATCH, Endpoint } from '../../../api/schema/snapshot.js';
import {
  CertificateRequest, ProxyMessage, XDS_PATHS,
  type CaInfo, type CertificateResponse, type InstanceInfo, type ServerMessage,
} from '../../../api/schema/xds.js';
import { boundAddress, formatHostPort, parseHostPort } from '../../../shared/address.js';
import type { Logger } from '../../../shared/log.js';
import type { SnapshotCompiler, WireSnapshot } from '../../core/compiler.js';
import type { IdentityService } from '../../core/identity.js';
import type { MetricsSink } from '../../core/ports.js';
import type { ProxyTracker } from '../../core/proxies.js';
import type { Registry } from '../../core/registry.js';
import type { TokenService } from '../../core/tokens.js';
import type { GoldenMetrics } from '../../core/golden-metrics.js';
import type { TapService } from '../../core/taps.js';
import type { DenialLog } from '../../core/denials.js';
import type { SubsetMetrics } from '../../core/subset-metrics.js';
import { issuesToFieldErrors } from '../../core/resource-service.js';
import type { z } from 'zod';

export interface XdsServerOptions {
  /** Coalescing window between a change and the push of a new version (default 20ms). */
  debounceMs?: number;
  /** HTTP/2 PING interval per session (default 15s). */
  keepaliveMs?: number;
  /** A session whose PING is not answered in this time is destroyed (default 10s). */
  pingTimeoutMs?: number;
  /**
   * A stream whose unsent output (plus the snapshot waiting for it to drain) exceeds this is dropped: the
   * proxy is not reading (default 8 MiB).
   */
  maxQueueBytes?: number;
  /** Longest accepted NDJSON line from a proxy (default 1 MiB). */
  maxLineBytes?: number;
  /** Serving certificate lifetime; renewed at half-life (default 30 days). */
  servingCertTtlMs?: number;
}

export interface XdsServerDeps {
  identity: IdentityService;
  tokens: TokenService;
  registry: Registry;
  compiler: SnapshotCompiler;
  proxies: ProxyTracker;
  metrics: MetricsSink;
  log: Logger;
  options?: XdsServerOptions;
  /** Where proxies' `stats` messages go (golden metrics for GET /api/v1/stats). */
  stats?: GoldenMetrics;
  /** Live tap sessions: tap-start/tap-stop to the proxies of a tapped service, their tap batches back. */
  taps?: TapService;
  /** Where the denials of proxies' stats messages go (GET /api/v1/denials). */
  denials?: DenialLog;
  /** Per-instance inbound stats with the instance's labels, for canary analysis (core/subset-metrics.ts). */
  subsetStats?: SubsetMetrics;
  /** Every live control plane's xDS address (several share a store): sent to proxies that take them. */
  controlPlanes?: () => Promise<string[]>;
  now?: () => number;
}

type PeerIdentity = { ok: true; service: string; spiffeId: string; notAfter?: string } | { ok: false; reason: string };

interface Connection {
  stream: http2.ServerHttp2Stream;
  service: string;
  spiffeId: string;
  certNotAfter?: string;
  instance?: InstanceInfo;
  lease?: number;
  goodbye: boolean;
  closed: boolean;
  /** Highest version sent (or queued as `pending`) on this stream (never send an older one). */
  sentVersion: number;
  /**
   * The newest snapshot waiting for the stream to drain: while the proxy has not taken the previous one,
   * a newer version replaces it instead of queueing behind it (the proxy only needs the latest).
   */
  pending?: WireSnapshot;
  /** The proxy announced the `delta` feature in hello. */
  delta: boolean;
  /** The proxy announced the `control-planes` feature in hello. */
  controlPlanes?: boolean;
  /** The version of the last config message written: what the proxy will be at (the base of the next delta). */
  base?: string;
  queue: Promise<void>;
}

const MAX_JSON_BODY = 64 * 1024;

export class XdsServer {
  private readonly deps: XdsServerDeps;
  private readonly opts: Required<XdsServerOptions>;
  private server?: http2.Http2SecureServer;
  private readonly connections = new Set<Connection>();
  private readonly byInstance = new Map<string, Connection>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private pushTimer?: NodeJS.Timeout;
  private firstChangeAt?: number;
  private pushing?: Promise<void>;
  private pushAgain = false;
  private renewTimer?: NodeJS.Timeout;
  private closing = false;
  private boundAddr = '';

  constructor(deps: XdsServerDeps) {
    this.deps = deps;
    this.opts = {
      debounceMs: deps.options?.debounceMs ?? 20,
      keepaliveMs: deps.options?.keepaliveMs ?? 15_000,
      pingTimeoutMs: deps.options?.pingTimeoutMs ?? 10_000,
      maxQueueBytes: deps.options?.maxQueueBytes ?? 8 * 1024 * 1024,
      maxLineBytes: deps.options?.maxLineBytes ?? 1024 * 1024,
      servingCertTtlMs: deps.options?.servingCertTtlMs ?? 30 * 24 * 3_600_000,
    };
    deps.registry.on('removed', (id) => deps.proxies.removed(id));
    deps.taps?.attach({
      instancesOf: (service) => [...this.byInstance.values()].filter((c) => !c.closed && c.service === service).map((c) => c.instance!.id),
      send: (instanceId, msg) => {
        const conn = this.byInstance.get(instanceId);
        if (conn && !conn.closed) this.send(conn, msg);
      },
    });
  }

  /** The bound address, HOST:PORT. */
  get address(): string { return this.boundAddr; }

  /** The address to advertise to proxies (in join tokens): the bound one, or this host's for a wildcard bind. */
  get advertisedAddress(): string {
    const { host, port } = parseHostPort(this.boundAddr);
    if (host === '0.0.0.0' || host === '::') return formatHostPort(primaryAddress(host === '::' ? 6 : 4), port);
    return this.boundAddr;
  }

  async listen(host: string, port: number): Promise<string> {
    const serving = await this.issueServingCert(host);
    const server = http2.createSecureServer({
      key: serving.keyPem,
      cert: serving.certPem,
      ca: [this.deps.identity.caPem],
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      ALPNProtocols: ['h2'],
      allowHTTP1: false,
    });
    this.server = server;
    server.on('session', (session) => this.onSession(session));
    server.on('stream', (stream, headers) => this.onStream(stream, headers));
    server.on('sessionError', (err) => this.deps.log.debug('xds session error', { error: err.message }));
    server.on('tlsClientError', (err) => this.deps.log.debug('xds TLS handshake failed', { error: err.message }));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    this.boundAddr = boundAddress(server.address());
    this.scheduleRenewal(host, serving.notAfter);
    return this.boundAddr;
  }

  /** A config input changed: push a new version to every connected proxy after the coalescing window. */
  schedulePush(): void {
    if (this.closing) return;
    this.firstChangeAt ??= Date.now();
    if (this.pushTimer) return;
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined;
      void this.push();
    }, this.opts.debounceMs);
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.pushTimer);
    clearTimeout(this.renewTimer);
    for (const conn of this.connections) conn.stream.close(http2.constants.NGHTTP2_CANCEL);
    for (const session of this.sessions) session.destroy();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await this.pushing;
  }

  // ---------------------------------------------------------------- serving certificate
  private async issueServingCert(host: string): Promise<{ certPem: string; keyPem: string; notAfter: Date }> {
    const dns = new Set(['localhost']);
    const ips = new Set(['127.0.0.1', '::1']);
    const hostname = os.hostname().toLowerCase();
    if (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(hostname)) dns.add(hostname);
    if (host === '0.0.0.0' || host === '::') {
      for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) ips.add(a.address.replace(/%.*$/, ''));
    } else if (isIP(host)) {
      ips.add(host);
    } else {
      dns.add(host.toLowerCase());
    }
    return this.deps.identity.issueServingCertificate([...dns], [...ips].filter((ip) => isIP(ip) !== 0), this.opts.servingCertTtlMs);
  }

  private scheduleRenewal(host: string, notAfter: Date): void {
    const delay = Math.min(2 ** 31 - 1, Math.max(60_000, (notAfter.getTime() - Date.now()) / 2));
    this.renewTimer = setTimeout(() => {
      this.issueServingCert(host).then((fresh) => {
        this.server?.setSecureContext({ key: fresh.keyPem, cert: fresh.certPem, ca: [this.deps.identity.caPem] });
        this.scheduleRenewal(host, fresh.notAfter);
      }).catch((err) => {
        this.deps.log.error('could not renew the xDS serving certificate', { error: (err as Error).message });
        this.scheduleRenewal(host, new Date(Date.now() + 120_000));
      });
    }, delay);
    this.renewTimer.unref();
  }

  // ---------------------------------------------------------------- sessions and keepalive
  private onSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.on('error', () => undefined);
    let waiting: NodeJS.Timeout | undefined;
    const interval = setInterval(() => {
      if (session.destroyed || session.closed || waiting) return;
      waiting = setTimeout(() => {
        this.deps.log.warn('xds peer did not answer a keepalive ping; dropping the session');
        session.destroy();
      }, this.opts.pingTimeoutMs);
      waiting.unref();
      try {
        session.ping((err) => {
          clearTimeout(waiting);
          waiting = undefined;
          if (err && !session.destroyed) session.destroy();
        });
      } catch {
        clearTimeout(waiting);
        waiting = undefined;
      }
    }, this.opts.keepaliveMs);
    interval.unref();
    session.once('close', () => {
      clearInterval(interval);
      clearTimeout(waiting);
      this.sessions.delete(session);
    });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const method = headers[':method'];
    const path = (headers[':path'] ?? '').split('?')[0];
    try {
      if (path === XDS_PATHS.ca) {
        if (method !== 'GET') return this.json(stream, 405, { error: 'METHOD_NOT_ALLOWED', message: 'use GET' });
        const body: CaInfo = { caPem: this.deps.identity.caPem, trustDomain: this.deps.identity.trustDomain };
        return this.json(stream, 200, body);
      }
      if (path === XDS_PATHS.certificates) {
        if (method !== 'POST') return this.json(stream, 405, { error: 'METHOD_NOT_ALLOWED', message: 'use POST' });
        void this.onCertificateRequest(stream);
        return;
      }
      if (path === XDS_PATHS.stream) {
        if (method !== 'POST') return this.json(stream, 405, { error: 'METHOD_NOT_ALLOWED', message: 'use POST' });
        this.onConfigStream(stream);
        return;
      }
      this.json(stream, 404, { error: 'NOT_FOUND', message: `no route ${String(path)}` });
    } catch (err) {
      this.deps.log.error('xds request failed', { error: (err as Error).message });
      this.json(stream, 500, { error: 'INTERNAL', message: 'internal error' });
    }
  }

  /** The identity the TLS layer authorized and the SPIFFE checks accept, if any. */
  private peerIdentity(stream: http2.ServerHttp2Stream): PeerIdentity {
    const socket = stream.session?.socket as TLSSocket | undefined;
    if (!socket || typeof socket.getPeerCertificate !== 'function') return { ok: false, reason: 'no TLS session' };
    const cert = socket.getPeerCertificate();
    if (!cert || !cert.raw) return { ok: false, reason: 'no client certificate' };
    if (!socket.authorized) return { ok: false, reason: `client certificate not trusted: ${String(socket.authorizationError ?? 'unknown')}` };
    const check = checkPeerCertificate(cert.raw, this.deps.identity.trustDomain);
    if (!check.ok) return { ok: false, reason: `client certificate refused: ${check.reason}` };
    const notAfter = cert.valid_to ? new Date(cert.valid_to).toISOString() : undefined;
    return { ok: true, service: check.service, spiffeId: check.spiffeId, ...(notAfter ? { notAfter } : {}) };
  }

  // ---------------------------------------------------------------- POST /v1/certificates
  private async onCertificateRequest(stream: http2.ServerHttp2Stream): Promise<void> {
    let raw: string;
    try {
      raw = await readBody(stream, MAX_JSON_BODY);
    } catch {
      return this.json(stream, 413, { error: 'REQUEST_TOO_LARGE', message: `body larger than ${MAX_JSON_BODY} bytes` });
    }
    let parsedJson: unknown;
    try {
      parsedJson = JSON.parse(raw);
    } catch {
      return this.json(stream, 400, { error: 'BAD_REQUEST', message: 'body is not JSON' });
    }
    const req = CertificateRequest.safeParse(parsedJson);
    if (!req.success) return this.json(stream, 400, { error: 'BAD_REQUEST', message: zodErrorsText(req.error) });

    let service: string;
    if (req.data.token !== undefined) {
      try {
        service = (await this.deps.tokens.verify(req.data.token)).service;
      } catch (err) {
        return this.json(stream, 401, { error: 'UNAUTHENTICATED', message: `join ${(err as Error).message}` });
      }
    } else {
      const peer = this.peerIdentity(stream);
      if (!peer.ok) {
        return this.json(stream, 401, { error: 'UNAUTHENTICATED', message: `no join token, and ${peer.reason}` });
      }
      service = peer.service;
    }
    try {
      const signed = await this.deps.identity.signForService(req.data.csr, service);
      this.deps.metrics.certificateIssued();
      const body: CertificateResponse = {
        certPem: signed.certPem, caPem: signed.caPem, spiffeId: signed.spiffeId, notAfter: signed.notAfter.toISOString(),
      };
      this.deps.log.info('certificate issued', { spiffeId: signed.spiffeId, serial: signed.serial, renewal: req.data.token === undefined });
      this.json(stream, 200, body);
    } catch (err) {
      this.json(stream, 400, { error: 'BAD_REQUEST', message: (err as Error).message });
    }
  }

  // ---------------------------------------------------------------- POST /v1/stream
  private onConfigStream(stream: http2.ServerHttp2Stream): void {
    const peer = this.peerIdentity(stream);
    if (!peer.ok) {
      this.json(stream, 401, { error: 'UNAUTHENTICATED', message: `the config stream needs a mesh certificate: ${peer.reason}` });
      return;
    }
    if (this.closing) {
      this.json(stream, 503, { error: 'UNAVAILABLE', message: 'control plane is shutting down' });
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const conn: Connection = {
      stream, service: peer.service, spiffeId: peer.spiffeId, goodbye: false, closed: false, sentVersion: 0, delta: false,
      queue: Promise.resolve(),
      ...(peer.notAfter ? { certNotAfter: peer.notAfter } : {}),
    };
    this.connections.add(conn);
    this.updateConnectedGauge();

    let buffer = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      if (conn.closed) return;
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim()) this.enqueue(conn, line);
      }
      if (buffer.length > this.opts.maxLineBytes) this.fail(conn, `message longer than ${this.opts.maxLineBytes} bytes`);
    });
    stream.on('end', () => {
      if (buffer.trim()) this.enqueue(conn, buffer);
      buffer = '';
      // The proxy closed its side: finish ours once queued messages are handled.
      conn.queue = conn.queue.then(() => { if (!stream.destroyed) stream.end(); });
    });
    stream.on('close', () => this.onConnectionClosed(conn));
  }

  private enqueue(conn: Connection, line: string): void {
    conn.queue = conn.queue.then(() => this.onMessage(conn, line)).catch((err) => {
      this.deps.log.error('xds message handling failed', { error: (err as Error).message });
      this.fail(conn, 'internal error');
    });
  }

  private async onMessage(conn: Connection, line: string): Promise<void> {
    if (conn.closed) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      return this.fail(conn, 'invalid message: not JSON');
    }
    const parsed = ProxyMessage.safeParse(json);
    if (!parsed.success) return this.fail(conn, `invalid message: ${zodErrorsText(parsed.error)}`);
    const msg = parsed.data;
    if (msg.type !== 'hello' && !conn.instance) return this.fail(conn, `the first message must be hello, got ${msg.type}`);
    if (conn.instance) this.deps.proxies.seen(conn.instance.id);

    switch (msg.type) {
      case 'hello':
        conn.delta = msg.features?.includes('delta') ?? false;
        conn.controlPlanes = msg.features?.includes('control-planes') ?? false;
        return this.onHello(conn, msg.instance, msg.certNotAfter, msg.lastVersion);
      case 'ack': {
        const latency = this.deps.proxies.ack(conn.instance!.id, msg.version);
        if (latency !== undefined) this.deps.metrics.observePush(latency);
        return;
      }
      case 'nack':
        // The proxy stays on an older version: the next config it gets is whole.
        conn.base = undefined;
        if (msg.error.startsWith(DELTA_BASE_MISMATCH)) {
          // Not a config problem: resynchronise with the whole current snapshot at once.
          this.deps.log.info('proxy missed a delta base; sending the whole snapshot', { instance: conn.instance!.id, version: msg.version });
          return this.resync(conn);
        }
        this.deps.proxies.nack(conn.instance!.id, msg.version, msg.error);
        this.deps.metrics.nack(conn.service);
        this.deps.log.warn('proxy rejected a config version', { instance: conn.instance!.id, service: conn.service, version: msg.version, error: msg.error });
        return;
      case 'cert':
        this.deps.proxies.cert(conn.instance!.id, msg.notAfter);
        return;
      case 'stats':
        // Stamped with the control plane's clock (proxy clocks may be skewed); the proxy's window gives the span.
        this.deps.stats?.ingest(conn.service, msg.rows, (this.deps.now ?? Date.now)(), Math.max(0, msg.window.end - msg.window.start), msg.dropped ?? 0);
        this.deps.subsetStats?.ingest(conn.instance!.id, conn.service, conn.instance!.labels, msg.rows, (this.deps.now ?? Date.now)(), Math.max(0, msg.window.end - msg.window.start));
        if (msg.denials || msg.denialsDropped) this.deps.denials?.record(conn.service, conn.instance!.id, msg.denials ?? [], msg.denialsDropped ?? 0);
        return;
      case 'tap':
        this.deps.taps?.receive(conn.instance!.id, conn.service, msg);
        return;
      case 'goodbye': {
        conn.goodbye = true;
        const id = conn.instance!.id;
        this.deps.registry.deregister(id, conn.lease);
        if (this.byInstance.get(id) === conn) this.byInstance.delete(id);
        this.deps.log.info('proxy said goodbye', { instance: id, service: conn.service });
        if (!conn.stream.destroyed) conn.stream.end();
        return;
      }
    }
  }

  private async onHello(conn: Connection, info: InstanceInfo, certNotAfter?: string, lastVersion?: string): Promise<void> {
    if (conn.instance) return this.fail(conn, 'duplicate hello');
    if (info.service !== conn.service) {
      return this.fail(conn, `hello registers service "${info.service}" but the certificate is ${conn.spiffeId}`);
    }
    if (!Endpoint.shape.address.safeParse(info.address).success) {
      return this.fail(conn, `instance address "${info.address}" must be HOST:PORT`);
    }
    const existing = this.deps.registry.get(info.id);
    if (existing && existing.info.service !== info.service) {
      return this.fail(conn, `instance id "${info.id}" is registered for service "${existing.info.service}"`);
    }
    const previous = this.byInstance.get(info.id);
    if (previous && previous !== conn) this.fail(previous, 'replaced by a newer connection of the same instance');
    conn.instance = info;
    this.byInstance.set(info.id, conn);
    conn.lease = this.deps.registry.connect(info);
    const notAfter = certNotAfter ?? conn.certNotAfter;
    this.deps.proxies.connected(info, notAfter);
    this.updateConnectedGauge();
    this.deps.log.info('proxy connected', { instance: info.id, service: info.service, address: info.address });
    // A proxy coming from another control plane sharing the store may hold a higher version than this one's:
    // move above it (every proxy here gets the new version), so no proxy sees its version go back.
    if (lastVersion !== undefined && /^\d{1,15}$/.test(lastVersion) && Number(lastVersion) >= Number(this.deps.compiler.currentVersion)) {
      try {
        if (await this.deps.compiler.advancePast(Number(lastVersion))) this.schedulePush();
      } catch (err) {
        // The store is unreachable for now: serve the current version rather than refuse the proxy.
        this.deps.log.warn('could not move the config version above the proxy\'s', { instance: info.id, lastVersion, error: (err as Error).message });
      }
    }
    if (conn.closed) return;
    this.sendSnapshot(conn, await this.deps.compiler.wireFor(info.service));
    if (!conn.closed && this.byInstance.get(info.id) === conn) this.deps.taps?.proxyConnected(info.id, info.service);
    if (conn.controlPlanes && this.deps.controlPlanes) {
      const addresses = await this.deps.controlPlanes().catch(() => []);
      if (addresses.length > 0 && !conn.closed) this.send(conn, { type: 'control-planes', addresses: addresses.slice(0, 64) });
    }
  }

  /** The set of control planes changed: tell the proxies that take it. */
  async broadcastControlPlanes(): Promise<void> {
    if (!this.deps.controlPlanes || this.closing) return;
    const addresses = (await this.deps.controlPlanes()).slice(0, 64);
    if (addresses.length === 0) return;
    for (const conn of this.connections) {
      if (conn.controlPlanes && conn.instance && !conn.closed) this.send(conn, { type: 'control-planes', addresses });
    }
  }

  private onConnectionClosed(conn: Connection): void {
    conn.closed = true;
    this.connections.delete(conn);
    const id = conn.instance?.id;
    if (id && (this.byInstance.get(id) ?? conn) === conn) this.deps.taps?.proxyDisconnected(id);
    if (id && this.byInstance.get(id) === conn) {
      this.byInstance.delete(id);
      if (!conn.goodbye && !this.closing) {
        this.deps.registry.disconnect(id, conn.lease);
        this.deps.proxies.disconnected(id);
        this.deps.log.info('proxy disconnected', { instance: id, service: conn.service, graceMs: this.deps.registry.graceMs });
      }
    }
    this.updateConnectedGauge();
  }

  // ---------------------------------------------------------------- pushing
  private async push(): Promise<void> {
    if (this.pushing) {
      this.pushAgain = true;
      return;
    }
    const run = async () => {
      do {
        this.pushAgain = false;
        const changeAt = this.firstChangeAt ?? Date.now();
        this.firstChangeAt = undefined;
        const version = await this.deps.compiler.bump();
        this.deps.proxies.versionCreated(version, changeAt);
        this.deps.metrics.setConfigVersion(Number(version));
        const targets = [...this.connections].filter((c) => c.instance && !c.closed);
        await Promise.all(targets.map((conn) => this.pushTo(conn)));
      } while (this.pushAgain && !this.closing);
    };
    this.pushing = run().catch((err) => {
      this.deps.log.error('config push failed', { error: (err as Error).message });
    }).finally(() => { this.pushing = undefined; });
    await this.pushing;
  }

  /** The current version to one proxy: a delta from what it was sent last when it takes deltas. */
  private async pushTo(conn: Connection): Promise<void> {
    const base = conn.delta ? conn.base : undefined;
    let wire = await this.deps.compiler.wireFor(conn.service, base);
    // Something else was written meanwhile (its hello's snapshot): the delta's base is stale.
    if (wire.baseVersion !== undefined && wire.baseVersion !== conn.base) wire = await this.deps.compiler.wireFor(conn.service);
    this.sendSnapshot(conn, wire);
  }

  private async resync(conn: Connection): Promise<void> {
    if (conn.closed) return;
    const wire = await this.deps.compiler.wireFor(conn.service);
    conn.pending = undefined;
    conn.sentVersion = Math.min(conn.sentVersion, Number(wire.version) - 1);
    this.sendSnapshot(conn, wire);
  }

  private sendSnapshot(conn: Connection, wire: WireSnapshot): void {
    const v = Number(wire.version);
    const stream = conn.stream;
    if (conn.closed || !conn.instance || v <= conn.sentVersion || stream.destroyed || !stream.writable) return;
    conn.sentVersion = v;
    this.deps.proxies.sent(conn.instance.id, wire.version);
    if (stream.writableNeedDrain) {
      // Still sending an older version: keep only the newest, sent once the stream drains.
      const first = !conn.pending;
      conn.pending = wire;
      if (stream.writableLength + wire.bytes > this.opts.maxQueueBytes) return this.dropSlow(conn);
      if (first) {
        stream.once('drain', () => {
          const next = conn.pending;
          conn.pending = undefined;
          if (next && !conn.closed) this.writeWire(conn, next);
        });
      }
      return;
    }
    this.writeWire(conn, wire);
  }

  /** Writes the shared buffers (no copy per proxy); the two writes are adjacent, so the NDJSON line stays whole. */
  private writeWire(conn: Connection, wire: WireSnapshot): void {
    const stream = conn.stream;
    if (stream.destroyed || !stream.writable) return;
    for (const chunk of wire.chunks) stream.write(chunk);
    conn.base = wire.version;
    if (stream.writableLength > this.opts.maxQueueBytes) this.dropSlow(conn);
  }

  private dropSlow(conn: Connection): void {
    const stream = conn.stream;
    this.deps.log.warn('proxy is not reading its config stream; dropping it', {
      instance: conn.instance?.id, service: conn.service, queuedBytes: stream.writableLength + (conn.pending?.bytes ?? 0),
    });
    conn.closed = true;
    conn.pending = undefined;
    stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  private send(conn: Connection, msg: ServerMessage): void {
    const stream = conn.stream;
    if (stream.destroyed || !stream.writable) return;
    stream.write(JSON.stringify(msg) + '\n');
    if (stream.writableLength > this.opts.maxQueueBytes) this.dropSlow(conn);
  }

  /** Sends an error message and closes the stream (without waiting for the proxy to close its side). */
  private fail(conn: Connection, error: string): void {
    if (conn.closed) return;
    this.deps.log.warn('closing a config stream', { service: conn.service, instance: conn.instance?.id, error });
    conn.closed = true;
    const stream = conn.stream;
    if (stream.destroyed) return;
    const close = () => { if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR); };
    if (stream.writable) stream.end(JSON.stringify({ type: 'error', error } satisfies ServerMessage) + '\n', close);
    else close();
  }

  private updateConnectedGauge(): void {
    this.deps.metrics.setConnectedProxies([...this.connections].filter((c) => c.instance && !c.closed).length);
  }

  private json(stream: http2.ServerHttp2Stream, status: number, body: unknown): void {
    if (stream.destroyed || stream.headersSent) return;
    stream.respond({ ':status': status, 'content-type': 'application/json' });
    stream.end(JSON.stringify(body));
  }
}

function zodErrorsText(err: z.ZodError): string {
  return issuesToFieldErrors(err.issues).map((e) => `${e.path}: ${e.message}`).join('; ');
}

function readBody(stream: http2.ServerHttp2Stream, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) { reject(new Error('too large')); return; }
      chunks.push(c);
    });
    stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.on('error', reject);
  });
}

function primaryAddress(family: 4 | 6): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (!a.internal && (family === 4 ? a.family === 'IPv4' : a.family === 'IPv6')) return a.address;
    }
  }
  return family === 4 ? '127.0.0.1' : '::1';
}
