/**
 * Connection state per proxy instance: when it connected, what it was last sent, what it ACKed,
 * its last NACK and its certificate expiry. Also measures push latency (config change -> ACK).
 */
import type { InstanceInfo } from '../../api/schema/xds.js';
import type { ProxyState } from '../contract.js';

const MAX_TRACKED_VERSIONS = 256;

export interface ProxyTrackerOptions {
  now?: () => number;
}

export class ProxyTracker {
  private readonly states = new Map<string, ProxyState>();
  /** version -> time (ms) of the first change that led to it. */
  private readonly changeAt = new Map<string, number>();
  private readonly now: () => number;

  constructor(opts: ProxyTrackerOptions = {}) {
    this.now = opts.now ?? (() => Date.now());
  }

  private iso(): string { return new Date(this.now()).toISOString(); }

  connected(info: InstanceInfo, certNotAfter?: string): void {
    const previous = this.states.get(info.id);
    const at = this.iso();
    this.states.set(info.id, {
      instanceId: info.id,
      service: info.service,
      address: info.address,
      protocol: info.protocol,
      labels: { ...info.labels },
      ...(info.version !== undefined ? { proxyVersion: info.version } : {}),
      ...(info.adminAddress !== undefined ? { adminAddress: info.adminAddress } : {}),
      connected: true,
      connectedAt: at,
      lastSeen: at,
      ...(previous?.ackedVersion !== undefined ? { ackedVersion: previous.ackedVersion } : {}),
      ...(previous?.lastNack ? { lastNack: previous.lastNack } : {}),
      ...(certNotAfter ?? previous?.certNotAfter ? { certNotAfter: certNotAfter ?? previous?.certNotAfter } : {}),
    });
  }

  seen(id: string): void {
    const s = this.states.get(id);
    if (s) s.lastSeen = this.iso();
  }

  sent(id: string, version: string): void {
    const s = this.states.get(id);
    if (s) s.lastSentVersion = version;
  }

  /** Records an ACK; returns the push latency in seconds when this is the proxy's first ACK of the version. */
  ack(id: string, version: string): number | undefined {
    const s = this.states.get(id);
    if (!s) return undefined;
    s.lastSeen = this.iso();
    if (s.ackedVersion === version) return undefined;
    s.ackedVersion = version;
    const changed = this.changeAt.get(version);
    return changed === undefined ? undefined : Math.max(0, this.now() - changed) / 1000;
  }

  nack(id: string, version: string, error: string): void {
    const s = this.states.get(id);
    if (!s) return;
    s.lastSeen = this.iso();
    s.lastNack = { version, error, at: this.iso() };
  }

  cert(id: string, notAfter: string): void {
    const s = this.states.get(id);
    if (!s) return;
    s.lastSeen = this.iso();
    s.certNotAfter = notAfter;
  }

  disconnected(id: string): void {
    const s = this.states.get(id);
    if (!s) return;
    s.connected = false;
    s.disconnectedAt = this.iso();
  }

  /** The instance left the registry: forget it. */
  removed(id: string): void {
    this.states.delete(id);
  }

  /** Notes when the change that produced `version` happened (for the push-latency histogram). */
  versionCreated(version: string, firstChangeAtMs: number): void {
    this.changeAt.set(version, firstChangeAtMs);
    while (this.changeAt.size > MAX_TRACKED_VERSIONS) {
      const oldest = this.changeAt.keys().next();
      if (oldest.done) break;
      this.changeAt.delete(oldest.value);
    }
  }

  get(id: string): ProxyState | undefined {
    const s = this.states.get(id);
    return s ? structuredClone(s) : undefined;
  }

  list(): ProxyState[] {
    return [...this.states.values()].map((s) => structuredClone(s))
      .sort((a, b) => (a.service === b.service ? (a.instanceId < b.instanceId ? -1 : 1) : a.service < b.service ? -1 : 1));
  }

  connectedCount(): number {
    let n = 0;
    for (const s of this.states.values()) if (s.connected) n++;
    return n;
  }
}
