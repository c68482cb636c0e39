/**
 * Builds the per-service Snapshot a proxy receives, from the resources and the registry.
 *
 * - clusters: every service = Service resources ∪ registered services; protocol from the Service resource,
 *   else from the first instance; endpoints from the registry; the TrafficPolicy targeting it (first by name).
 * - routes: every HTTPRoute and TCPRoute (a proxy routes its outbound calls to any service).
 * - authorizationPolicies / jwtAuthentications: only those targeting the proxy's own service (inbound side).
 * - version: a counter persisted in the store, so it keeps increasing across restarts.
 */
import {
  DEFAULT_MESH_CONFIG, type Resource, type ResourceOf,
} from '../../api/schema/resources.js';
import type { ClusterConfig, Endpoint, Snapshot } from '../../api/schema/snapshot.js';
import type { Protocol } from '../../api/schema/common.js';
import type { Store } from './ports.js';
import type { InstanceState } from './registry.js';

export const VERSION_COUNTER = 'config-version';

export interface CompileInput {
  service: string;
  version: string;
  trustDomain: string;
  resources: Resource[];
  instances: InstanceState[];
}

function ofKind<K extends Resource['kind']>(resources: Resource[], kind: K): ResourceOf<K>[] {
  return resources
    .filter((r): r is ResourceOf<K> => r.kind === kind)
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
}

/** The clusters of the mesh (same for every proxy). One pass over the instances: O(I log I + S). */
export function compileClusters(resources: Resource[], instances: InstanceState[]): Record<string, ClusterConfig> {
  const services = new Map<string, { protocol?: Protocol; port?: number }>();
  for (const svc of ofKind(resources, 'Service')) {
    services.set(svc.metadata.name, { protocol: svc.spec.protocol, ...(svc.spec.port !== undefined ? { port: svc.spec.port } : {}) });
  }
  const sorted = [...instances].sort((a, b) => (a.registeredAt < b.registeredAt ? -1 : a.registeredAt > b.registeredAt ? 1 : a.info.id < b.info.id ? -1 : 1));
  const byService = new Map<string, InstanceState[]>();
  for (const inst of sorted) {
    const known = services.get(inst.info.service);
    if (!known) services.set(inst.info.service, { protocol: inst.info.protocol });
    else if (!known.protocol) known.protocol = inst.info.protocol;
    let list = byService.get(inst.info.service);
    if (!list) byService.set(inst.info.service, (list = []));
    list.push(inst);
  }
  const policies = new Map<string, ResourceOf<'TrafficPolicy'>>();
  // First by name wins.
  for (const p of ofKind(resources, 'TrafficPolicy')) if (!policies.has(p.spec.targetRef.name)) policies.set(p.spec.targetRef.name, p);
  const clusters: Record<string, ClusterConfig> = {};
  for (const name of [...services.keys()].sort()) {
    const svc = services.get(name)!;
    const endpoints: Endpoint[] = (byService.get(name) ?? [])
      .sort((a, b) => (a.info.id < b.info.id ? -1 : 1))
      .map((i) => ({ id: i.info.id, address: i.info.address, labels: { ...i.info.labels }, draining: isDraining(i) }));
    const policy = policies.get(name);
    clusters[name] = {
      name,
      protocol: svc.protocol ?? 'http',
      ...(svc.port !== undefined ? { port: svc.port } : {}),
      endpoints,
      ...(policy ? { trafficPolicy: policy.spec, trafficPolicyName: policy.metadata.name } : {}),
    };
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
export function compileShared(input: Omit<CompileInput, 'service'>): SharedConfig {
  const { resources } = input;
  const mesh = ofKind(resources, 'MeshConfig').find((m) => m.metadata.name === 'default');
  return {
    version: input.version,
    trustDomain: input.trustDomain,
    meshConfig: mesh ? mesh.spec : DEFAULT_MESH_CONFIG,
    clusters: compileClusters(resources, input.instances),
    httpRoutes: ofKind(resources, 'HTTPRoute'),
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
 * A snapshot message as it goes on the wire: `{"type":"snapshot","snapshot":{...}}\n`, as two buffers
 * written back to back — the shared head (serialised once per version, the same Buffer for every proxy)
 * and the per-service tail.
 */
export interface WireSnapshot {
  version: string;
  chunks: readonly Buffer[];
  bytes: number;
}

class VersionState {
  readonly shared: Promise<SharedConfig>;
  private head?: Promise<Buffer>;
  private readonly wires = new Map<string, Promise<WireSnapshot>>();
  private readonly snapshots = new Map<string, Promise<Snapshot>>();

  constructor(readonly version: string, compile: () => Promise<SharedConfig>) {
    this.shared = compile();
  }

  snapshot(service: string): Promise<Snapshot> {
    let s = this.snapshots.get(service);
    if (!s) this.snapshots.set(service, (s = this.shared.then((shared) => snapshotOf(shared, service))));
    return s;
  }

  wire(service: string): Promise<WireSnapshot> {
    let w = this.wires.get(service);
    if (!w) {
      this.head ??= this.shared.then((s) => Buffer.from(`{"type":"snapshot","snapshot":{"version":${JSON.stringify(s.version)},"trustDomain":${JSON.stringify(s.trustDomain)},`
        + `"meshConfig":${JSON.stringify(s.meshConfig)},"clusters":${JSON.stringify(s.clusters)},"httpRoutes":${JSON.stringify(s.httpRoutes)},`
        + `"tcpRoutes":${JSON.stringify(s.tcpRoutes)},`));
      w = Promise.all([this.head, this.snapshot(service)]).then(([head, snap]) => {
        const tail = Buffer.from(`"authorizationPolicies":${JSON.stringify(snap.authorizationPolicies)},"jwtAuthentications":${JSON.stringify(snap.jwtAuthentications)}}}\n`);
        return { version: this.version, chunks: [head, tail], bytes: head.length + tail.length };
      });
      this.wires.set(service, w);
    }
    return w;
  }
}

export interface InstanceSource {
  list(): InstanceState[];
}

/** Versions are reserved in blocks: the store is written once per VERSION_BLOCK versions, not per change. */
export const VERSION_CEILING = 'config-version-ceiling';
export const VERSION_BLOCK = 1000;

/**
 * Holds the current config version and compiles snapshots at it. The shared part of a version is compiled
 * and serialised once; a snapshot for (version, service) is built once and cached, so every proxy of a
 * service sees the same content (and the same bytes) for a given version. Only the current version is kept.
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
  private state?: VersionState;

  constructor(store: Store, registry: InstanceSource, trustDomain: string) {
    this.store = store;
    this.registry = registry;
    this.trustDomain = trustDomain;
  }

  /** Starts a new version at startup, above every version served before a restart. */
  async init(): Promise<string> {
    // VERSION_COUNTER: what data dirs of earlier releases persisted (one write per version).
    const counter = await this.store.getCounter(VERSION_COUNTER);
    const ceiling = Number((await this.store.getBlob(VERSION_CEILING)) ?? '0');
    this.version = Math.max(counter, Number.isFinite(ceiling) ? ceiling : 0);
    this.ceiling = this.version;
    return this.bump();
  }

  get currentVersion(): string {
    return String(this.version);
  }

  /** Moves to a new version (call after resources or the registry changed). */
  async bump(): Promise<string> {
    const next = this.version + 1;
    if (next > this.ceiling) {
      const ceiling = next + VERSION_BLOCK - 1;
      await this.store.putBlob(VERSION_CEILING, String(ceiling));
      this.ceiling = ceiling;
    }
    this.version = next;
    this.state = undefined;
    return String(next);
  }

  private current(): VersionState {
    if (!this.state) {
      const version = String(this.version);
      // Inputs are read now: a later change makes a new version.
      const instances = this.registry.list();
      const state = new VersionState(version, () => this.store.listResources().then((resources) =>
        compileShared({ version, trustDomain: this.trustDomain, resources, instances })));
      state.shared.catch(() => { if (this.state === state) this.state = undefined; });
      this.state = state;
    }
    return this.state;
  }

  /** The snapshot for `service` at the current version. */
  snapshotFor(service: string): Promise<Snapshot> {
    return this.current().snapshot(service);
  }

  /** The snapshot message for `service` at the current version, serialised (shared bytes across proxies). */
  wireFor(service: string): Promise<WireSnapshot> {
    return this.current().wire(service);
  }
}
