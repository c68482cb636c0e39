/**
 * The sidecar proxy process: join with a token, obtain an SVID, listen, register, follow config.
 *
 *   token → pinned CA → key + CSR → SVID → inbound (mTLS) listener → config stream (hello)
 *   → first snapshot applied → outbound / http-proxy listeners → ready
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type { Protocol } from '../api/schema/common.js';
import type { TapStartMessage } from '../api/schema/xds.js';
import { generateWorkloadKey } from '../pki/workload-key.js';
import { spiffeIdFor } from '../pki/spiffe.js';
import { boundAddress, isLoopbackHost, parseHostPort, type HostPort } from '../shared/address.js';
import { createLogger, type Logger } from '../shared/log.js';
import { ControlPlaneClient } from './bootstrap/control-plane-client.js';
import { readJoinToken } from './bootstrap/join-token.js';
import { XdsStream, backoffDelay } from './bootstrap/xds-stream.js';
import { WorkloadIdentity, certNotAfter } from './identity/workload-identity.js';
import { createAdminServer } from './listeners/admin.js';
import { DrainState } from './listeners/drain.js';
import { InboundListener } from './listeners/inbound.js';
import { DEFAULT_HTTP1_TIMEOUTS, OutboundListener } from './listeners/outbound.js';
import { ProxyMetrics } from './metrics.js';
import { statsIntervalFromEnv } from './stats.js';
import { makeProbe } from './health-probe.js';
import type { CompiledConfig } from './runtime/compiled-config.js';
import { ConfigApplier } from './runtime/config-applier.js';
import type { ProxyServices } from './runtime/services.js';
import { AppForwarder } from './upstream/app-forwarder.js';
import { EndpointRegistry } from './upstream/endpoint-registry.js';
import { PeerPool } from './upstream/peer-pool.js';
import { TraceExporters } from './tracing/otlp-exporter.js';
import { TapHub } from './tap/tap-hub.js';
import { TRELLIS_VERSION } from '../shared/version.js';

/** How long a terminating proxy keeps serving after saying goodbye, before GOAWAY (Istio's drain duration). */
export const DEREGISTRATION_GRACE_MS = 1000;

export interface ProxyOptions {
  service: string;
  app: string;
  inbound: string;
  token: string;
  protocol: Protocol;
  labels: Record<string, string>;
  outbound: Array<{ service: string; address: string }>;
  httpProxy?: string;
  admin: string;
  /** Overrides the token's control-plane addresses: HOST:PORT, or several comma-separated. */
  controlPlane?: string;
  drainTimeoutMs: number;
  /** HTTP/1.1 slowloris bounds (`--header-timeout`, `--request-timeout`); defaults 20s / 300s. */
  headerTimeoutMs?: number;
  requestTimeoutMs?: number;
  onListening?: (name: string, address: string) => void;
}

export interface RunningProxy {
  addresses: Record<string, string>;
  /** Fails readiness, says goodbye, drains up to drainTimeoutMs, closes. */
  shutdown(): Promise<void>;
  readonly closed: Promise<void>;
}

export async function startProxy(opts: ProxyOptions): Promise<RunningProxy> {
  const log = createLogger({ component: 'proxy', service: opts.service });
  const claims = readJoinToken(opts.token);
  if (claims.service !== opts.service) {
    throw new Error(`the join token is for service "${claims.service}", not "${opts.service}"`);
  }
  if (claims.expiresAt && claims.expiresAt.getTime() < Date.now()) {
    throw new Error(`the join token expired at ${claims.expiresAt.toISOString()}: create a new one with \`trellis token create --service ${opts.service}\``);
  }
  const adminAddr = parseHostPort(opts.admin, '--admin');
  if (!isLoopbackHost(adminAddr.host)) throw new Error(`--admin must be a loopback address (got ${opts.admin})`);
  const appAddr = parseHostPort(opts.app, '--app');
  const inboundAddr = parseHostPort(opts.inbound, '--inbound');
  const http1Timeouts = {
    headersTimeoutMs: opts.headerTimeoutMs ?? DEFAULT_HTTP1_TIMEOUTS.headersTimeoutMs,
    requestTimeoutMs: opts.requestTimeoutMs ?? DEFAULT_HTTP1_TIMEOUTS.requestTimeoutMs,
  };
  if (!(http1Timeouts.headersTimeoutMs > 0) || http1Timeouts.requestTimeoutMs < http1Timeouts.headersTimeoutMs) {
    throw new Error('--header-timeout must be > 0 and no longer than --request-timeout');
  }

  // --control-plane A[,B...] replaces the token's addresses.
  const cp = new ControlPlaneClient(opts.controlPlane ?? claims.controlPlanes, claims.trustDomain, claims.caPin);
  await retryUntilReachable(() => cp.fetchPinnedCa(), log);
  const { keyPem, csrPem } = await generateWorkloadKey(opts.service);
  const cert = await cp.requestCertificate(csrPem, { token: opts.token });
  const identity = new WorkloadIdentity(claims.trustDomain, {
    keyPem, certPem: cert.certPem, caPem: cert.caPem, spiffeId: cert.spiffeId, notAfter: new Date(cert.notAfter),
  });
  log.info('obtained certificate', { spiffeId: cert.spiffeId, notAfter: cert.notAfter });

  const instanceId = `${opts.service}-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const metrics = new ProxyMetrics({ service: opts.service, instance: instanceId });
  metrics.certExpiry.set(identity.current.notAfter.getTime() / 1000);
  const peers = new PeerPool(identity, metrics);
  const app = new AppForwarder(appAddr, opts.protocol);
  let xds: XdsStream | undefined;
  const tap = new TapHub({
    instance: instanceId,
    send: (msg, maxBacklogBytes) => xds?.sendBounded(msg, maxBacklogBytes) ?? false,
    onDropped: (reason, count) => metrics.tapEventsDropped.labels({ reason }).inc(count),
    onSessions: (count) => metrics.tapSessions.set(count),
  });
  const services: ProxyServices = {
    service: opts.service,
    trustDomain: claims.trustDomain,
    spiffeId: spiffeIdFor(claims.trustDomain, opts.service),
    peers,
    endpoints: new EndpointRegistry(),
    metrics,
    app,
    log,
    traces: new TraceExporters({
      resource: { 'service.name': opts.service, 'service.instance.id': instanceId },
      onDropped: (reason, count) => metrics.spansDropped.labels({ reason }).inc(count),
      log,
    }),
    tap,
  };

  let inbound: InboundListener | undefined;
  let firstConfig!: () => void;
  const gotFirstConfig = new Promise<void>((resolve) => { firstConfig = resolve; });
  const applier = new ConfigApplier({
    services,
    trustDomain: claims.trustDomain,
    probeFor: (cluster) => makeProbe(peers, cluster),
    onApplied: (next) => {
      inbound?.configApplied(next); // MeshConfig mtls: STRICT or PERMISSIVE, once per version
      metrics.configVersion.set(Number(next.version) || 0);
      log.info('config applied', { version: next.version });
      firstConfig();
    },
    onRefused: (version, error) => {
      metrics.configNacks.inc();
      log.warn('config refused (NACK); keeping the last good config', { version, error });
    },
  });
  const drain = new DrainState();
  const config = () => applier.current;
  const addresses: Record<string, string> = {};
  const announce = (name: string, address: string) => {
    addresses[name] = address;
    opts.onListening?.(name, address);
  };

  // Admin first, so readiness can be watched from the start.
  let ready = false;
  const admin = createAdminServer(metrics, {
    ready: () => ready && !drain.draining,
    config: () => ({
      version: applier.current?.version ?? null,
      instance: instanceId,
      spiffeId: identity.current.spiffeId,
      certificateNotAfter: identity.current.notAfter.toISOString(),
      controlPlaneConnected: xds?.connected ?? false,
      lastNack: applier.lastNack ?? null,
      upstreams: upstreamStatus(applier.current),
      snapshot: applier.current?.snapshot ?? null,
    }),
    drain: () => void shutdown(),
  });
  announce('admin', await listen(admin, adminAddr));

  inbound = new InboundListener({ services, identity, config, drain, protocol: opts.protocol, http1Timeouts });
  announce('inbound', await listen(inbound.server, inboundAddr));

  const credentials = () => ({ keyPem: identity.current.keyPem, certPem: identity.current.certPem });
  xds = new XdsStream(cp, credentials, {
    id: instanceId, service: opts.service, address: addresses.inbound!, protocol: opts.protocol, labels: opts.labels,
    adminAddress: addresses.admin!, version: TRELLIS_VERSION,
  }, {
    // prepare: modules only some configs need (jose for JWTAuthentication) load before the version compiles.
    apply: async (raw) => { await applier.prepare(raw); return applier.apply(raw); },
    applyDelta: async (raw) => { await applier.prepare(raw); return applier.applyDelta(raw); },
  }, log, undefined, () => identity.current.notAfter);
  // Taps live as long as one config stream: a reconnect ends them, the control plane starts them again.
  xds.on('tap-start', (msg: TapStartMessage) => tap.start(msg));
  xds.on('tap-stop', (msg: { tapId: string }) => tap.stop(msg.tapId));
  xds.on('connected', () => tap.clear());
  xds.on('disconnected', () => tap.clear());
  xds.start();
  await gotFirstConfig;

  const listeners: net.Server[] = [admin, inbound.server];
  for (const out of opts.outbound) {
    const listener = new OutboundListener({ services, config, drain, http1Timeouts }, out.service);
    announce(`outbound:${out.service}`, await listen(listener.server, parseHostPort(out.address, '--outbound')));
    listeners.push(listener.server);
  }
  if (opts.httpProxy) {
    const listener = new OutboundListener({ services, config, drain, http1Timeouts }, undefined);
    announce('http-proxy', await listen(listener.server, parseHostPort(opts.httpProxy, '--http-proxy')));
    listeners.push(listener.server);
  }
  ready = true;

  const renewal = scheduleRenewal(identity, cp, xds, metrics, log);
  // Golden metrics for the control plane (`trellis stat`/`top`): one stats message per interval.
  const sendStats = () => { const msg = metrics.stats.flush(); if (msg) xds!.send(msg); };
  const statsTimer = setInterval(sendStats, statsIntervalFromEnv());
  statsTimer.unref();

  let closedResolve!: () => void;
  const closed = new Promise<void>((resolve) => { closedResolve = resolve; });
  let shuttingDown: Promise<void> | undefined;
  function shutdown(): Promise<void> {
    shuttingDown ??= (async () => {
      log.info('draining', { inflight: drain.inflight, timeoutMs: opts.drainTimeoutMs });
      ready = false;
      renewal.stop();
      clearInterval(statsTimer);
      tap.close();
      sendStats();
      await xds!.goodbye();
      // Keep serving normally while the deregistration reaches callers, so none of them sends a
      // new request into a GOAWAY; then stop accepting and wait for what is in flight.
      await new Promise((r) => setTimeout(r, Math.min(DEREGISTRATION_GRACE_MS, opts.drainTimeoutMs)));
      const clean = await drain.drain(opts.drainTimeoutMs);
      if (!clean) log.warn('drain timeout reached with requests in flight', { inflight: drain.inflight });
      applier.dispose();
      await services.traces.shutdown(); // flush queued spans (bounded by the export timeout)
      peers.close();
      app.close();
      for (const l of listeners) l.close();
      closedResolve();
    })();
    return shuttingDown;
  }
  return { addresses, shutdown, closed };
}

function listen(server: net.Server, addr: HostPort): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => {
      server.off('error', reject);
      resolve(boundAddress(server.address()));
    });
  });
}

async function retryUntilReachable<T>(fn: () => Promise<T>, log: Logger): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const message = (err as Error).message;
      if (/pin mismatch/.test(message)) throw err;
      const delay = backoffDelay(attempt, { baseMs: 250, maxMs: 5000 });
      log.warn('control plane not reachable yet; retrying', { error: message, retryInMs: delay });
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Renews the SVID at a random point between 50% and 70% of its life; a failure retries sooner. */
function scheduleRenewal(identity: WorkloadIdentity, cp: ControlPlaneClient, xds: XdsStream, metrics: ProxyMetrics, log: Logger): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const plan = () => {
    if (stopped) return;
    // Planned from when we received it: notBefore is backdated for clock skew.
    const receivedAt = identity.receivedAt;
    const at = receivedAt + (identity.current.notAfter.getTime() - receivedAt) * (0.5 + Math.random() * 0.2);
    timer = setTimeout(() => void renew(), Math.max(0, at - Date.now()));
    timer.unref();
  };
  const renew = async () => {
    try {
      const { keyPem, csrPem } = await generateWorkloadKey(identity.current.spiffeId);
      const res = await cp.requestCertificate(csrPem, { keyPem: identity.current.keyPem, certPem: identity.current.certPem });
      identity.update({ keyPem, certPem: res.certPem, caPem: res.caPem, spiffeId: res.spiffeId, notAfter: certNotAfter(res.certPem) });
      metrics.certExpiry.set(identity.current.notAfter.getTime() / 1000);
      xds.send({ type: 'cert', notAfter: identity.current.notAfter.toISOString() });
      log.info('certificate renewed', { notAfter: identity.current.notAfter.toISOString() });
      plan();
    } catch (err) {
      const retry = Math.max(1000, identity.remainingMs() / 10);
      log.warn('certificate renewal failed; retrying', { error: (err as Error).message, retryInMs: retry });
      if (!stopped) { timer = setTimeout(() => void renew(), retry); timer.unref(); }
    }
  };
  plan();
  return { stop: () => { stopped = true; clearTimeout(timer); } };
}

/** Live endpoint state per destination, for /config: what the balancers currently choose from. */
function upstreamStatus(config: CompiledConfig | undefined): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  if (!config) return out;
  const now = performance.now();
  for (const [name, cluster] of config.clusters) {
    out[name] = cluster.endpoints.map((ep) => ({
      id: ep.id, address: ep.address, labels: ep.labels, healthy: ep.healthy,
      ejected: ep.ejectedUntil > now, draining: ep.draining, inflight: ep.inflight,
    }));
  }
  return out;
}
