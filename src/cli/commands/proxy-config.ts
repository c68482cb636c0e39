/**
 * `trellis proxy-config SERVICE [-o table|yaml|json]`: per instance of SERVICE, its address, whether
 * it is connected, the config version it ACKed against the control plane's current version, its
 * last NACK and its certificate expiry (TrellisClient.proxies()). The snapshot itself is at each
 * proxy's admin `/config` (loopback on the proxy's host).
 */
import type { ProxiesResponse } from '../../sdk/client.js';
import { renderTable, toJson, toYaml, type OutputFormat } from '../output.js';
import { clientFor, handleApiError, type ClientCliOptions } from './resources.js';

export interface ProxyConfigView {
  service: string;
  currentVersion: string;
  instances: Array<{
    instanceId: string;
    address: string;
    connected: boolean;
    /** Streams from another control plane (shared etcd): its versions and ACKs are that one's. */
    connectedElsewhere?: boolean;
    adminAddress?: string;
    ackedVersion: string | null;
    currentVersion: string;
    lastSentVersion: string | null;
    /** ACKed the current version and no NACK after it. */
    upToDate: boolean;
    /** The last NACK is for a version newer than the ACKed one. */
    nackOutstanding: boolean;
    lastNack: { version: string; error: string; at: string } | null;
    certNotAfter: string | null;
  }>;
}

/** A NACK is outstanding when it is for a version newer than the one ACKed. */
export function outstandingNack(p: { ackedVersion?: string; lastNack?: { version: string } }): boolean {
  if (!p.lastNack) return false;
  const nacked = Number(p.lastNack.version);
  const acked = Number(p.ackedVersion ?? 0);
  return Number.isFinite(nacked) ? nacked > acked : p.ackedVersion === undefined;
}

export function proxyConfigView(service: string, res: ProxiesResponse): ProxyConfigView {
  return {
    service,
    currentVersion: res.version,
    instances: res.proxies.filter((p) => p.service === service).map((p) => ({
      instanceId: p.instanceId,
      address: p.address,
      connected: p.connected,
      ...(p.connectedElsewhere ? { connectedElsewhere: true } : {}),
      ...(p.adminAddress ? { adminAddress: p.adminAddress } : {}),
      ackedVersion: p.ackedVersion ?? null,
      currentVersion: res.version,
      lastSentVersion: p.lastSentVersion ?? null,
      upToDate: p.ackedVersion === res.version && !outstandingNack(p),
      nackOutstanding: outstandingNack(p),
      lastNack: p.lastNack ?? null,
      certNotAfter: p.certNotAfter ?? null,
    })),
  };
}

export function formatProxyConfig(view: ProxyConfigView, format: OutputFormat): string {
  if (format === 'json') return toJson(view);
  if (format === 'yaml') return toYaml(view);
  if (view.instances.length === 0) return `No proxies of service ${view.service}.\n`;
  return renderTable(['INSTANCE', 'ADDRESS', 'CONNECTED', 'ACKED', 'CURRENT', 'STATE', 'LAST NACK', 'CERT EXPIRES'],
    view.instances.map((i) => [
      i.instanceId, i.address, i.connected ? (i.connectedElsewhere ? 'other CP' : 'yes') : 'no', i.ackedVersion ?? '-', i.currentVersion,
      i.connectedElsewhere ? 'ask its control plane' : i.upToDate ? 'up to date' : i.nackOutstanding ? 'NACKed' : 'stale',
      i.lastNack ? `v${i.lastNack.version} at ${i.lastNack.at}: ${i.lastNack.error}` : '-',
      i.certNotAfter ?? '-',
    ]));
}

export async function runProxyConfig(service: string, opts: ClientCliOptions & { output: OutputFormat }): Promise<void> {
  try {
    const view = proxyConfigView(service, await clientFor(opts).proxies());
    if (view.instances.length === 0 && opts.output === 'table') {
      process.stderr.write(`error: no proxies of service ${service} are registered\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(formatProxyConfig(view, opts.output));
    if (view.instances.length === 0) process.exitCode = 1;
  } catch (err) {
    handleApiError(err);
  }
}
