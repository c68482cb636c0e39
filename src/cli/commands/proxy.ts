/** `trellis proxy`: the sidecar process (its definition and options: ../program/proxy.ts). */
import { readFileSync } from 'node:fs';
import { parseDuration } from '../../api/duration.js';
import type { Protocol } from '../../api/schema/common.js';
import { startProxy } from '../../proxy/proxy.js';
import { announceListening, announce } from '../../shared/log.js';

export function parseLabels(items: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`invalid label "${item}": expected key=value`);
    labels[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return labels;
}

export function parseOutbound(items: string[]): Array<{ service: string; address: string }> {
  return items.map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`invalid --outbound "${item}": expected NAME=HOST:PORT`);
    return { service: item.slice(0, eq), address: item.slice(eq + 1) };
  });
}

/** The options of `trellis proxy` as commander parsed them (definition: ../program/proxy.ts). */
export interface ProxyCliOptions {
  service: string; app: string; inbound: string; tokenFile: string; protocol: Protocol;
  labels: string[]; outbound: string[]; httpProxy?: string; admin: string; controlPlane?: string;
  drainTimeout: string; headerTimeout: string; requestTimeout: string;
}

/** `trellis proxy`: runs the sidecar until SIGTERM/SIGINT (drained) or the admin /drain. */
export async function runProxy(o: ProxyCliOptions): Promise<void> {
  const token = readFileSync(o.tokenFile, 'utf8').trim();
  // Signals before the proxy is up end it at once; after, they drain it.
  let shutdown: (() => Promise<void>) | undefined;
  const onSignal = () => { if (shutdown) void shutdown(); else process.exit(0); };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const proxy = await startProxy({
    service: o.service,
    app: o.app,
    inbound: o.inbound,
    token,
    protocol: o.protocol,
    labels: parseLabels(o.labels),
    outbound: parseOutbound(o.outbound),
    httpProxy: o.httpProxy,
    admin: o.admin,
    controlPlane: o.controlPlane,
    drainTimeoutMs: parseDuration(o.drainTimeout),
    headerTimeoutMs: parseDuration(o.headerTimeout),
    requestTimeoutMs: parseDuration(o.requestTimeout),
    onListening: announceListening,
  });
  shutdown = proxy.shutdown;
  announce('ready', { service: o.service });
  await proxy.closed;
  process.exit(0);
}
