/**
 * What a proxy does with each config message from the control plane: validate it with the Snapshot
 * schema, check the trust domain, compile it (runtime/compiled-config.ts), swap it in atomically and
 * dispose the previous one. Any failure keeps the last good config and is reported for a NACK.
 * prepare() loads, before a version is applied, the modules its features need (optional-modules.ts).
 * The same code runs in `trellis proxy` and in the control-plane benchmark's simulated proxies.
 */
import type { ClusterConfig } from '../../api/schema/snapshot.js';
import { DELTA_BASE_MISMATCH, Snapshot, SnapshotDelta } from '../../api/schema/snapshot.js';
import { parseOrThrow } from '../../api/schema/validate.js';
import { compileConfig, type CompiledConfig } from './compiled-config.js';
import { loadModulesFor } from './optional-modules.js';
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

  /**
   * Loads the modules a raw snapshot or delta needs that a proxy does not load at start (jose for a
   * JWTAuthentication), so that apply()/applyDelta() can compile it synchronously: await it first.
   * Undefined when there is nothing to load. A module that fails to load refuses the version like any
   * compile error (NACK), and is tried again with the next one.
   */
  prepare(raw: unknown): Promise<void> | undefined {
    const loading = loadModulesFor(raw);
    return loading?.catch((err: unknown) => {
      const refused = new Error(`loading a module this config needs failed: ${(err as Error).message}`);
      this.refused(raw, refused);
      throw refused;
    });
  }

  /** Applies a raw snapshot; returns its version, or throws with the reason to NACK. */
  apply(raw: unknown): string {
    return this.guard(raw, () => {
      const snapshot = parseOrThrow(Snapshot, raw, 'snapshot.');
      return this.swap(snapshot, undefined);
    });
  }

  /**
   * Applies a raw SnapshotDelta on top of the current config: only its parts are validated; unchanged
   * clusters keep their objects (and so their runtime state, see compileConfig). The result is a whole
   * snapshot at the delta's version. Throws DELTA_BASE_MISMATCH when the current version is not its base.
   */
  applyDelta(raw: unknown): string {
    return this.guard(raw, () => {
      const delta = parseOrThrow(SnapshotDelta, raw, 'delta.');
      const base = this.config;
      if (!base || base.version !== delta.baseVersion) {
        throw new Error(`${DELTA_BASE_MISMATCH}: delta from version ${delta.baseVersion}, but this proxy is at ${base?.version ?? 'none'}`);
      }
      const prev = base.snapshot;
      const removed = new Set(delta.removedClusters);
      const clusters: Snapshot['clusters'] = {};
      const added = Object.keys(delta.clusters).filter((n) => !(n in prev.clusters));
      // Name order, as in a whole snapshot (the previous order holds unless names were added).
      const names = added.length > 0 ? [...Object.keys(prev.clusters), ...added].sort() : Object.keys(prev.clusters);
      for (const name of names) {
        if (removed.has(name)) continue;
        const c = delta.clusters[name] ?? prev.clusters[name];
        if (c) clusters[name] = c;
      }
      const snapshot: Snapshot = {
        version: delta.version,
        trustDomain: delta.trustDomain,
        meshConfig: delta.meshConfig ?? prev.meshConfig,
        clusters,
        httpRoutes: delta.httpRoutes || delta.removedHttpRoutes ? mergeByName(prev.httpRoutes, delta.httpRoutes ?? [], delta.removedHttpRoutes ?? []) : prev.httpRoutes,
        tcpRoutes: delta.tcpRoutes ?? prev.tcpRoutes,
        authorizationPolicies: delta.authorizationPolicies ?? prev.authorizationPolicies,
        jwtAuthentications: delta.jwtAuthentications ?? prev.jwtAuthentications,
      };
      return this.swap(snapshot, base);
    });
  }

  private swap(snapshot: Snapshot, reuseFrom: CompiledConfig | undefined): string {
    if (snapshot.trustDomain !== this.opts.trustDomain) {
      throw new Error(`snapshot trust domain ${snapshot.trustDomain} is not ${this.opts.trustDomain}`);
    }
    const next = compileConfig(snapshot, this.opts.services, this.opts.probeFor, reuseFrom);
    const previous = this.config;
    this.config = next;
    previous?.retire(next);
    this.opts.onApplied?.(next);
    return snapshot.version;
  }

  private guard(raw: unknown, apply: () => string): string {
    try {
      return apply();
    } catch (err) {
      this.refused(raw, err as Error);
      throw err;
    }
  }

  private refused(raw: unknown, err: Error): void {
    const version = typeof (raw as { version?: unknown })?.version === 'string' ? (raw as { version: string }).version : 'unknown';
    this.nack = { version, error: err.message, at: new Date().toISOString() };
    this.opts.onRefused?.(version, err.message);
  }

  dispose(): void {
    this.config?.dispose();
  }
}

/**
 * The previous routes with these added, replaced or removed (by name), in name order as in a whole
 * snapshot. Unchanged routes keep their objects, so the compile can tell which destinations' routes
 * changed (compiled-config.ts compares by identity).
 */
function mergeByName<T extends { metadata: { name: string } }>(prev: readonly T[], upserts: readonly T[], removed: readonly string[]): T[] {
  const byName = new Map(prev.map((r) => [r.metadata.name, r]));
  for (const name of removed) byName.delete(name);
  for (const r of upserts) byName.set(r.metadata.name, r);
  return [...byName.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((n) => byName.get(n)!);
}
