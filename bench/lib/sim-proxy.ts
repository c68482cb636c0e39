/**
 * A proxy's control-plane side without its data path, for the control-plane benchmark: it joins with a
 * real join token (pinned CA, generated key, CSR → SVID), opens the real config stream (XdsStream, the
 * proxy's own client) and applies every snapshot with the proxy's own ConfigApplier (zod validation +
 * compileConfig) before the stream ACKs it. Only the listeners are missing: nothing serves traffic.
 */
import { randomBytes } from 'node:crypto';
import { DELTA_BASE_MISMATCH, type Snapshot } from '../../src/api/schema/snapshot.js';
import { generateWorkloadKey } from '../../src/pki/workload-key.js';
import { spiffeIdFor } from '../../src/pki/spiffe.js';
import { createLogger } from '../../src/shared/log.js';
import { ControlPlaneClient } from '../../src/proxy/bootstrap/control-plane-client.js';
import { readJoinToken } from '../../src/proxy/bootstrap/join-token.js';
import { XdsStream, backoffDelay } from '../../src/proxy/bootstrap/xds-stream.js';
import { WorkloadIdentity } from '../../src/proxy/identity/workload-identity.js';
import { ProxyMetrics } from '../../src/proxy/metrics.js';
import { makeProbe } from '../../src/proxy/health-probe.js';
import { ConfigApplier } from '../../src/proxy/runtime/config-applier.js';
import type { ProxyServices } from '../../src/proxy/runtime/services.js';
import { AppForwarder } from '../../src/proxy/upstream/app-forwarder.js';
import { EndpointRegistry } from '../../src/proxy/upstream/endpoint-registry.js';
import { PeerPool } from '../../src/proxy/upstream/peer-pool.js';
import { AppliedVersion } from './version-waiters.js';
import { TraceExporters } from '../../src/proxy/tracing/otlp-exporter.js';

export interface AppliedEvent { version: string; at: number; applyMs: number; snapshot: Snapshot }

export interface SimProxy {
  readonly id: string;
  readonly service: string;
  /** Latest applied (and ACKed) version, as a number; 0 before the first. */
  readonly version: number;
  readonly nacks: number;
  /** Deltas refused because this proxy was not at their base (the control plane then sends the whole snapshot). */
  readonly resyncs: number;
  /** Called after each applied version (the ACK is written right after it returns). */
  onApplied?: (ev: AppliedEvent) => void;
  /** Resolves when a version ≥ v was applied. */
  waitVersion(v: number, timeoutMs: number): Promise<void>;
  /** Says goodbye (the control plane deregisters the instance at once), then closes the stream. */
  goodbye(): Promise<void>;
  stop(): void;
}

/** Joins the mesh as `service` (address is what the instance registers; nothing listens there). */
export async function startSimProxy(token: string, service: string, address: string, labels: Record<string, string> = {}, onConnected?: () => void): Promise<SimProxy> {
  const log = createLogger({ component: 'sim-proxy', service });
  const claims = readJoinToken(token);
  const cp = new ControlPlaneClient(claims.controlPlane, claims.trustDomain, claims.caPin);
  // Like a real proxy, keep trying while the control plane is too busy to answer (bounded).
  await retry(() => cp.fetchPinnedCa());
  const { keyPem, csrPem } = await generateWorkloadKey(service);
  const cert = await retry(() => cp.requestCertificate(csrPem, { token }));
  const identity = new WorkloadIdentity(claims.trustDomain, {
    keyPem, certPem: cert.certPem, caPem: cert.caPem, spiffeId: cert.spiffeId, notAfter: new Date(cert.notAfter),
  });
  const id = `${service}-sim-${randomBytes(4).toString('hex')}`;
  const peers = new PeerPool(identity);
  const services: ProxyServices = {
    service,
    trustDomain: claims.trustDomain,
    spiffeId: spiffeIdFor(claims.trustDomain, service),
    peers,
    endpoints: new EndpointRegistry(),
    metrics: new ProxyMetrics({ service, instance: id }),
    app: new AppForwarder({ host: '127.0.0.1', port: 9 }, 'http'),
    log,
    traces: new TraceExporters({ resource: { 'service.name': service, 'service.instance.id': id }, onDropped: () => undefined, log }),
  };
  const applied = new AppliedVersion(id);
  let nacks = 0;
  let resyncs = 0;
  const applier = new ConfigApplier({ services, trustDomain: claims.trustDomain, probeFor: (c) => makeProbe(peers, c) });
  const sim: SimProxy = {
    id, service,
    get version() { return applied.value; },
    get nacks() { return nacks; },
    get resyncs() { return resyncs; },
    waitVersion: (v, timeoutMs) => applied.wait(v, timeoutMs),
    goodbye: () => stream.goodbye(),
    stop() { stream.stop(); applier.dispose(); peers.close(); },
  };
  const stream = new XdsStream(cp, () => ({ keyPem: identity.current.keyPem, certPem: identity.current.certPem }), {
    id, service, address, protocol: 'http', labels,
  }, {
    apply: async (raw) => { await applier.prepare(raw); return applyWith(() => applier.apply(raw)); },
    applyDelta: async (raw) => { await applier.prepare(raw); return applyWith(() => applier.applyDelta(raw)); },
  }, log, { baseMs: 250, maxMs: 2000 }, () => identity.current.notAfter);
  function applyWith(apply: () => string): string {
    const t0 = performance.now();
    try {
      const v = apply();
      const at = performance.now();
      applied.set(Number(v));
      sim.onApplied?.({ version: v, at, applyMs: at - t0, snapshot: applier.current!.snapshot });
      return v;
    } catch (err) {
      if ((err as Error).message.startsWith(DELTA_BASE_MISMATCH)) resyncs++;
      else nacks++;
      throw err;
    }
  }
  if (onConnected) stream.on('connected', onConnected);
  stream.start();
  return sim;
}

async function retry<T>(fn: () => Promise<T>, attempts = 10): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i + 1 >= attempts || !/timed out|ECONNRESET|ECONNREFUSED/.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, backoffDelay(i, { baseMs: 250, maxMs: 5000 })));
    }
  }
}
