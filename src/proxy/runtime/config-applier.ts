/**
 * What a proxy does with each config message from the control plane: validate it with the Snapshot
 * schema, check the trust domain, compile it (runtime/compiled-config.ts), swap it in atomically and
 * dispose the previous one. Any failure keeps the last good config and is reported for a NACK.
 * The same code runs in `trellis proxy` and in the control-plane benchmark's simulated proxies.
 */
import type { ClusterConfig } from '../../api/schema/snapshot.js';
import { Snapshot } from '../../api/schema/snapshot.js';
import { parseOrThrow } from '../../api/schema/validate.js';
import { compileConfig, type CompiledConfig } from './compiled-config.js';
import type { ProxyServices } from './services.js';
import type { Probe } from '../upstream/health-checker.js';

export interface ConfigApplierOptions {
  services: ProxyServices;
  trustDomain: string;
  probeFor: (cluster: ClusterConfig) => Probe;
  /** Called after a version is swapped in. */
  onApplied?: (config: CompiledConfig) => void;
  /** Called when a version is refused (kept: the previous one). */
  onRefused?: (version: string, error: string) => void;
}

export interface LastNack { version: string; error: string; at: string }

export class ConfigApplier {
  private config?: CompiledConfig;
  private nack?: LastNack;

  constructor(private readonly opts: ConfigApplierOptions) {}

  get current(): CompiledConfig | undefined { return this.config; }
  get lastNack(): LastNack | undefined { return this.nack; }

  /** Applies a raw snapshot; returns its version, or throws with the reason to NACK. */
  apply(raw: unknown): string {
    try {
      const snapshot = parseOrThrow(Snapshot, raw, 'snapshot.');
      if (snapshot.trustDomain !== this.opts.trustDomain) {
        throw new Error(`snapshot trust domain ${snapshot.trustDomain} is not ${this.opts.trustDomain}`);
      }
      const next = compileConfig(snapshot, this.opts.services, this.opts.probeFor);
      const previous = this.config;
      this.config = next;
      previous?.dispose();
      this.opts.onApplied?.(next);
      return snapshot.version;
    } catch (err) {
      const version = typeof (raw as { version?: unknown })?.version === 'string' ? (raw as { version: string }).version : 'unknown';
      this.nack = { version, error: (err as Error).message, at: new Date().toISOString() };
      this.opts.onRefused?.(version, (err as Error).message);
      throw err;
    }
  }

  dispose(): void {
    this.config?.dispose();
  }
}
