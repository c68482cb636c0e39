/**
 * Builds the per-service Snapshot a proxy receives, from the resources and the registry.
 *
 * - clusters: every service = Service resources ∪ registered services; protocol from the Service resource,
 *   else from the first instance; endpoints from the registry; the TrafficPolicy targeting it (first by name).
 * - routes: every HTTPRoute and TCPRoute (a proxy routes its outbound calls to any service); the HTTPRoutes
 *   carry the traffic split of every Rollout in force (core/rollout-routing.ts).
 * - authorizationPolicies / jwtAuthentications: only those targeting the proxy's own service (inbound side).
 * - version: keeps increasing across restarts (reserved in blocks in the store, see SnapshotCompiler).
 *
 * Per version, everything but the per-service policies is compiled and serialised once (SharedConfig,
 * VersionState); deltas between recent versions are computed from their per-cluster JSON.
 */
import {
  DEFAULT_MESH_CONFIG, type Resource, type ResourceOf,
} from '../../api/schema/resources.js';
import type { ClusterConfig, Endpoint, Snapshot } from '../../api/schema/snapshot.js';
import type { Protocol } from '../../api/schema/common.js';
import type { Store } from './ports.js';
import type { InstanceState } from './registry.js';
import { byName } from '../../api/resource-order.js';
import { applyRolloutSplits, type RolloutRouting } from './rollout-routing.js';

export const VERSION_COUNTER = 'config-version';

export interface CompileInput {
  service: string;
  version: string;
  trustDomain: string;
  resources: Resource[];
  instances: readonly InstanceState[];
  /** The Rollouts whose split is in force (core/rollouts.ts), applied to the HTTPRoutes (core/rollout-routing.ts). */
  rollouts?: readonly RolloutRouting[];
}

function ofKind<K extends Resource['kind']>(resources: Resource[], kind: K): ResourceOf<K>[] {
  return resources
    .filter((r): r is ResourceOf<K> => r.kind === kind)
    .sort(byName);
}

/**
 * What a cluster was compiled from. When a service's inputs are the same at the next version (the same
 * instance state objects — the registry replaces a state on every change — and the same Service/TrafficPolicy
 * content), its ClusterConfig object is reused, and with it its serialised JSON (see versionJson).
 */
export interface ClusterInputs { key: string; instances: readonly InstanceState[]; config: ClusterConfig }

/** The clusters of the mesh (same for every proxy). One pass over the instances: O(I log I + S). */
export function compileClusters(
  resources: Resource[], instances: readonly InstanceState[],
  previous?: ReadonlyMap<string, ClusterInputs>, record?: Map<string, ClusterInputs>,
): Record<string, ClusterConfig> {
  const services = new Map<string, { protocol?: Protocol; port?: number }>();
  for (const svc of ofKind(resources, 'Service')) {
    services.set(svc.metadata.name, { protocol: svc.spec.protocol, ...(svc.spec.port !== undefined ? { port: svc.spec.port } : {}) });
  }
  // A service without a Service resource (or without its protocol) takes the protocol of its first
  // registered instance (earliest registeredAt, then id): found in one pass, no sort of every instance.
  const earlier = (a: InstanceState, b: InstanceState) => (a.registeredAt < b.registeredAt || (a.registeredAt === b.registeredAt && a.info.id < b.info.id));
  const byService = new Map<string, InstanceState[]>();
  const first = new Map<string, InstanceState>();
  for (const inst of instances) {
    const name = inst.info.service;
    let list = byService.get(name);
    if (!list) byService.set(name, (list = []));
    list.push(inst);
    const f = first.get(name);
    if (!f || earlier(inst, f)) first.set(name, inst);
  }
  for (const [name, inst] of first) {
    const known = services.get(name);
    if (!known) services.set(name, { protocol: inst.info.protocol });
    else if (!known.protocol) known.protocol = inst.info.protocol;
  }
  const policies = new Map<string, ResourceOf<'TrafficPolicy'>>();
  // First by name wins.
  for (const p of ofKind(resources, 'TrafficPolicy')) if (!policies.has(p.spec.targetRef.name)) policies.set(p.spec.targetRef.name, p);
  const clusters: Record<string, ClusterConfig> = {};
  for (const name of [...services.keys()].sort()) {
    const svc = services.get(name)!;
    const members = (byService.get(name) ?? []).sort((a, b) => (a.info.id < b.info.id ? -1 : 1));
    const policy = policies.get(name);
    const key = `${svc.protocol ?? 'http'}|${svc.port ?? ''}|${policy ? `${policy.metadata.name}|${JSON.stringify(policy.spec)}` : ''}`;
    const old = previous?.get(name);
    const config: ClusterConfig = old && old.key === key && old.instances.length === members.length && old.instances.every((x, i) => x === members[i])
      ? old.config
      : {
        name,
        protocol: svc.protocol ?? 'http',
        ...(svc.port !== undefined ? { port: svc.port } : {}),
        endpoints: members.map((i) => ({ id: i.info.id, address: i.info.address, labels: { ...i.info.labels }, draining: isDraining(i) })),
        ...(policy ? { trafficPolicy: policy.spec, trafficPolicyName: policy.metadata.name } : {}),
      };
    clusters[name] = config;
    record?.set(name, { key, instances: members, config });
  }
  return clusters;
}

/** Disconnected while the control plane was running: no new traffic. Restored after a restart: keeps traffic. */
export function isDraining(i: InstanceState): boolean {
  return !i.connected && !i.restored;
}

/**
 * Everything of a version that does not depend on the proxy's service (clusters, routes, MeshConfig),
 * compiled once per version, with its JSON text; the per-service part (the policies targeting that
 * service) is small and added per service.
 */
export interface SharedConfig {
  version: string;
  trustDomain: string;
  meshConfig: Snapshot['meshConfig'];
  clusters: Snapshot['clusters'];
  httpRoutes: Snapshot['httpRoutes'];
  tcpRoutes: Snapshot['tcpRoutes'];
  authorizationPolicies: Snapshot['authorizationPolicies'];
  jwtAuthentications: Snapshot['jwtAuthentications'];
}

/** Pure: the shared part of a version. */
export function compileShared(
  input: Omit<CompileInput, 'service'>,
  previous?: ReadonlyMap<string, ClusterInputs>, record?: Map<string, ClusterInputs>,
): SharedConfig {
  const { resources } = input;
  const mesh = ofKind(resources, 'MeshConfig').find((m) => m.metadata.name === 'default');
  return {
    version: input.version,
    trustDomain: input.trustDomain,
    meshConfig: mesh ? mesh.spec : DEFAULT_MESH_CONFIG,
    clusters: compileClusters(resources, input.instances, previous, record),
    httpRoutes: applyRolloutSplits(ofKind(resources, 'HTTPRoute'), input.rollouts ?? []),
    tcpRoutes: ofKind(resources, 'TCPRoute'),
    authorizationPolicies: ofKind(resources, 'AuthorizationPolicy'),
    jwtAuthentications: ofKind(resources, 'JWTAuthentication'),
  };
}

/** Pure: the snapshot of one service's proxies, from the shared part (shares its objects: treat as immutable). */
export function snapshotOf(shared: SharedConfig, service: string): Snapshot {
  return {
    version: shared.version,
    trustDomain: shared.trustDomain,
    meshConfig: shared.meshConfig,
    clusters: shared.clusters,
    httpRoutes: shared.httpRoutes,
    tcpRoutes: shared.tcpRoutes,
    authorizationPolicies: shared.authorizationPolicies.filter((p) => p.spec.targetRef.name === service),
    jwtAuthentications: shared.jwtAuthentications.filter((p) => p.spec.targetRef.name === service),
  };
}

/** Pure: the snapshot for one service's proxies. */
export function compileSnapshot(input: CompileInput): Snapshot {
  return snapshotOf(compileShared(input), input.service);
}

/**
 * A config message as it goes on the wire — `{"type":"snapshot","snapshot":{...}}\n`, or for proxies that
 * take deltas `{"type":"delta","delta":{...}}\n` — as buffers written back to back: the shared head
 * (serialised once per version, or per (base, version) for a delta; the same Buffer for every proxy) and
 * the small per-service tail.
 */
export interface WireSnapshot {
  version: string;
  /** Set for a delta: the version the proxy must be at. */
  baseVersion?: string;
  chunks: readonly Buffer[];
  bytes: number;
}

/** The JSON text of one version's parts, kept for a few versions so deltas can be computed against them. */
interface VersionJson {
  clusters: Map<string, string>;
  trustDomain: string;
  meshConfig: string;
  /** Per HTTPRoute, in name order. */
  httpRoutes: Map<string, string>;
  tcpRoutes: string;
}

/** JSON of a ClusterConfig object, kept while the object lives (unchanged clusters are reused across versions). */
const clusterJsonCache = new WeakMap<ClusterConfig, string>();

function versionJson(s: SharedConfig): VersionJson {
  const clusters = new Map<string, string>();
  for (const [name, c] of Object.entries(s.clusters)) {
    let json = clusterJsonCache.get(c);
    if (json === undefined) clusterJsonCache.set(c, (json = JSON.stringify(c)));
    clusters.set(name, json);
  }
  return {
    clusters, trustDomain: s.trustDomain, meshConfig: JSON.stringify(s.meshConfig),
    httpRoutes: new Map(s.httpRoutes.map((r) => [r.metadata.name, JSON.stringify(r)])), tcpRoutes: JSON.stringify(s.tcpRoutes),
  };
}

function clustersJson(names: Iterable<string>, json: Map<string, string>): string {
  const parts: string[] = [];
  for (const n of names) parts.push(`${JSON.stringify(n)}:${json.get(n)!}`);
  return `{${parts.join(',')}}`;
}

class VersionState {
  shared?: Promise<SharedConfig>;
  readonly json: Promise<VersionJson>;
  private head?: Promise<Buffer>;
  private wires = new Map<string, Promise<WireSnapshot>>();
  private snapshots = new Map<string, Promise<Snapshot>>();
  private deltaHeads = new Map<string, Promise<Buffer>>();

  constructor(readonly version: string, compile: () => Promise<SharedConfig>) {
    this.shared = compile();
    this.json = this.shared.then(versionJson);
  }

  /** No longer current: keep only the JSON text (deltas from this version), drop objects and buffers. */
  retire(): void {
    this.shared = undefined;
    this.head = undefined;
    this.wires = new Map();
    this.snapshots = new Map();
    this.deltaHeads = new Map();
  }

  private get live(): Promise<SharedConfig> {
    if (!this.shared) throw new Error(`config version ${this.version} is no longer current`);
    return this.shared;
  }

  snapshot(service: string): Promise<Snapshot> {
    let s = this.snapshots.get(service);
    if (!s) this.snapshots.set(service, (s = this.live.then((shared) => snapshotOf(shared, service))));
    return s;
  }

  /** The whole snapshot, or with `base` (an older, retained version) the delta from it. */
  wire(service: string, base?: VersionState): Promise<WireSnapshot> {
    const key = base ? `${base.version}\n${service}` : service;
    let w = this.wires.get(key);
    if (!w) {
      w = base ? this.deltaWire(service, base) : this.fullWire(service);
      this.wires.set(key, w);
    }
    return w;
  }

  private fullWire(service: string): Promise<WireSnapshot> {
    this.head ??= this.json.then((j) => Buffer.from(`{"type":"snapshot","snapshot":{"version":${JSON.stringify(this.version)},"trustDomain":${JSON.stringify(j.trustDomain)},`
      + `"meshConfig":${j.meshConfig},"clusters":${clustersJson(j.clusters.keys(), j.clusters)},"httpRoutes":[${[...j.httpRoutes.values()].join(',')}],`
      + `"tcpRoutes":${j.tcpRoutes},`));
    return Promise.all([this.head, this.snapshot(service)]).then(([head, snap]) => {
      const tail = Buffer.from(`"authorizationPolicies":${JSON.stringify(snap.authorizationPolicies)},"jwtAuthentications":${JSON.stringify(snap.jwtAuthentications)}}}\n`);
      return { version: this.version, chunks: [head, tail], bytes: head.length + tail.length };
    });
  }

  private deltaWire(service: string, base: VersionState): Promise<WireSnapshot> {
    let head = this.deltaHeads.get(base.version);
    if (!head) {
      head = Promise.all([this.json, base.json]).then(([cur, old]) => {
        const changed: string[] = [];
        for (const [name, text] of cur.clusters) if (old.clusters.get(name) !== text) changed.push(name);
        const removed = [...old.clusters.keys()].filter((n) => !cur.clusters.has(n));
        let text = `{"type":"delta","delta":{"version":${JSON.stringify(this.version)},"baseVersion":${JSON.stringify(base.version)},`
          + `"trustDomain":${JSON.stringify(cur.trustDomain)},"clusters":${clustersJson(changed, cur.clusters)},"removedClusters":${JSON.stringify(removed)}`;
        if (cur.meshConfig !== old.meshConfig) text += `,"meshConfig":${cur.meshConfig}`;
        const routes: string[] = [];
        for (const [name, json] of cur.httpRoutes) if (old.httpRoutes.get(name) !== json) routes.push(json);
        const removedRoutes = [...old.httpRoutes.keys()].filter((n) => !cur.httpRoutes.has(n));
        if (routes.length > 0) text += `,"httpRoutes":[${routes.join(',')}]`;
        if (removedRoutes.length > 0) text += `,"removedHttpRoutes":${JSON.stringify(removedRoutes)}`;
        if (cur.tcpRoutes !== old.tcpRoutes) text += `,"tcpRoutes":${cur.tcpRoutes}`;
        return Buffer.from(text);
      });
      this.deltaHeads.set(base.version, head);
    }
    // The per-service policies are small: sent whole in every delta.
    return Promise.all([head, this.snapshot(service)]).then(([h, snap]) => {
      const tail = Buffer.from(`,"authorizationPolicies":${JSON.stringify(snap.authorizationPolicies)},"jwtAuthentications":${JSON.stringify(snap.jwtAuthentications)}}}\n`);
      return { version: this.version, baseVersion: base.version, chunks: [h, tail], bytes: h.length + tail.length };
    });
  }
}

export interface InstanceSource {
  list(): InstanceState[];
  /** The same without copies, when the source can (read-only). */
  states?(): readonly InstanceState[];
}

/** Where the compiler reads the Rollout splits in force when it starts a version (core/rollouts.ts). */
export interface RolloutRoutingSource {
  routing(): readonly RolloutRouting[];
}

/**
 * Versions are reserved in blocks: the store is written once per VERSION_BLOCK versions, not per change.
 * VERSION_RESERVED is a counter of every version any control plane reserved: `increment(VERSION_RESERVED,
 * VERSION_BLOCK)` is atomic, so with a shared store (etcd) each control plane's block is its own and no two
 * of them hand out the same version. VERSION_CEILING is the blob earlier releases kept (read as a floor).
 */
export const VERSION_CEILING = 'config-version-ceiling';
export const VERSION_RESERVED = 'config-version-reserved';
export const VERSION_BLOCK = 1000;
/** How many versions back a delta can start from (older bases get the whole snapshot). */
export const DELTA_BASES_KEPT = 8;

/**
 * Holds the current config version and compiles snapshots at it. The shared part of a version is compiled
 * and serialised once; a snapshot for (version, service) is built once and cached, so every proxy of a
 * service sees the same content (and the same bytes) for a given version. Older versions keep only their
 * JSON text, for deltas (DELTA_BASES_KEPT of them).
 *
 * Versions keep increasing across restarts: the store holds a ceiling above every version handed out
 * (raised by VERSION_BLOCK before it is reached), and a start begins above it.
 */
export class SnapshotCompiler {
  private readonly store: Store;
  private readonly registry: InstanceSource;
  readonly trustDomain: string;
  private version = 0;
  private ceiling = 0;
  private versionChain: Promise<void> = Promise.resolve();
  private state?: VersionState;
  /** Recent versions (current included), oldest first: deltas can be computed from them. */
  private readonly recent = new Map<string, VersionState>();
  /** The last compile's per-cluster inputs: unchanged clusters are reused (object and JSON). */
  private lastInputs?: Map<string, ClusterInputs>;

  private readonly rollouts?: RolloutRoutingSource;

  constructor(store: Store, registry: InstanceSource, trustDomain: string, rollouts?: RolloutRoutingSource) {
    this.store = store;
    this.registry = registry;
    this.trustDomain = trustDomain;
    if (rollouts) this.rollouts = rollouts;
  }

  /** Starts a new version at startup, above every version served before a restart. */
  async init(): Promise<string> {
    // What data dirs of earlier releases persisted: VERSION_COUNTER (one write per version), then VERSION_CEILING.
    const counter = await this.store.getCounter(VERSION_COUNTER);
    const ceiling = Number((await this.store.getBlob(VERSION_CEILING)) ?? '0');
    return this.serially(async () => {
      await this.reserveAbove(Math.max(counter, Number.isFinite(ceiling) ? ceiling : 0));
      return this.next();
    });
  }

  get currentVersion(): string {
    return String(this.version);
  }

  /** Moves to a new version (call after resources or the registry changed). */
  bump(): Promise<string> {
    return this.serially(async () => {
      if (this.version + 1 > this.ceiling) await this.reserveAbove(this.version);
      return this.next();
    });
  }

  /**
   * A proxy arrived (from another control plane sharing the store) at `version`, at or above this one's current
   * version: move above it, so no proxy ever sees its version go back. Versions above every reservation are
   * ignored (no control plane handed them out). Returns true when the version moved.
   */
  advancePast(version: number): Promise<boolean> {
    return this.serially(async () => {
      if (!Number.isSafeInteger(version) || version < this.version) return false;
      if (version > await this.store.getCounter(VERSION_RESERVED)) return false;
      await this.reserveAbove(version);
      this.next();
      return true;
    });
  }

  private next(): string {
    this.version += 1;
    this.state = undefined;
    return String(this.version);
  }

  /**
   * Reserves a block of versions above `floor`: the range an atomic increment returns is this control plane's
   * alone; when the counter was still at or below the floor, a second increment jumps above it.
   */
  private async reserveAbove(floor: number): Promise<void> {
    let by = VERSION_BLOCK;
    for (let attempt = 0; attempt < 3; attempt++) {
      const top = await this.store.increment(VERSION_RESERVED, by);
      const low = Math.max(top - by, floor);
      if (top > low) {
        this.version = low;
        this.ceiling = top;
        return;
      }
      by = floor - top + VERSION_BLOCK;
    }
    throw new Error('could not reserve config versions');
  }

  /** Version changes one at a time (a reservation awaits the store). */
  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.versionChain.then(fn);
    this.versionChain = run.then(() => undefined, () => undefined);
    return run;
  }

  private current(): VersionState {
    if (!this.state) {
      const version = String(this.version);
      // Inputs are read now: a later change makes a new version.
      const instances = this.registry.states?.() ?? this.registry.list();
      const rollouts = this.rollouts?.routing() ?? [];
      const state = new VersionState(version, () => this.store.listResources().then((resources) => {
        const record = new Map<string, ClusterInputs>();
        const shared = compileShared({ version, trustDomain: this.trustDomain, resources, instances, rollouts }, this.lastInputs, record);
        this.lastInputs = record;
        return shared;
      }));
      state.json.catch(() => {
        if (this.state === state) this.state = undefined;
        this.recent.delete(version);
      });
      for (const old of this.recent.values()) old.retire();
      this.recent.set(version, state);
      while (this.recent.size > DELTA_BASES_KEPT) this.recent.delete(this.recent.keys().next().value!);
      this.state = state;
    }
    return this.state;
  }

  /** The snapshot for `service` at the current version. */
  snapshotFor(service: string): Promise<Snapshot> {
    return this.current().snapshot(service);
  }

  /**
   * The config message for `service` at the current version, serialised (bytes shared across proxies):
   * the delta from `baseVersion` when that version is recent enough, else the whole snapshot.
   */
  wireFor(service: string, baseVersion?: string): Promise<WireSnapshot> {
    const current = this.current();
    const base = baseVersion !== undefined && baseVersion !== current.version ? this.recent.get(baseVersion) : undefined;
    return current.wire(service, base);
  }
}
