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

/** The clusters of the mesh (same for every proxy). */
export function compileClusters(resources: Resource[], instances: InstanceState[]): Record<string, ClusterConfig> {
  const services = new Map<string, { protocol?: Protocol; port?: number }>();
  for (const svc of ofKind(resources, 'Service')) {
    services.set(svc.metadata.name, { protocol: svc.spec.protocol, ...(svc.spec.port !== undefined ? { port: svc.spec.port } : {}) });
  }
  const sorted = [...instances].sort((a, b) => (a.registeredAt < b.registeredAt ? -1 : a.registeredAt > b.registeredAt ? 1 : a.info.id < b.info.id ? -1 : 1));
  for (const inst of sorted) {
    const known = services.get(inst.info.service);
    if (!known) services.set(inst.info.service, { protocol: inst.info.protocol });
    else if (!known.protocol) known.protocol = inst.info.protocol;
  }
  const policies = ofKind(resources, 'TrafficPolicy');
  const clusters: Record<string, ClusterConfig> = {};
  for (const name of [...services.keys()].sort()) {
    const svc = services.get(name)!;
    const endpoints: Endpoint[] = instances
      .filter((i) => i.info.service === name)
      .sort((a, b) => (a.info.id < b.info.id ? -1 : 1))
      .map((i) => ({ id: i.info.id, address: i.info.address, labels: { ...i.info.labels }, draining: isDraining(i) }));
    const policy = policies.find((p) => p.spec.targetRef.name === name);
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

/** Pure: the snapshot for one service's proxies. */
export function compileSnapshot(input: CompileInput): Snapshot {
  const { resources, service } = input;
  const mesh = ofKind(resources, 'MeshConfig').find((m) => m.metadata.name === 'default');
  return {
    version: input.version,
    trustDomain: input.trustDomain,
    meshConfig: mesh ? mesh.spec : DEFAULT_MESH_CONFIG,
    clusters: compileClusters(resources, input.instances),
    httpRoutes: ofKind(resources, 'HTTPRoute'),
    tcpRoutes: ofKind(resources, 'TCPRoute'),
    authorizationPolicies: ofKind(resources, 'AuthorizationPolicy').filter((p) => p.spec.targetRef.name === service),
    jwtAuthentications: ofKind(resources, 'JWTAuthentication').filter((p) => p.spec.targetRef.name === service),
  };
}

export interface InstanceSource {
  list(): InstanceState[];
}

/**
 * Holds the current config version and compiles snapshots at it. A snapshot for (version, service) is
 * compiled once and cached, so every proxy of a service sees the same content for a given version.
 */
export class SnapshotCompiler {
  private readonly store: Store;
  private readonly registry: InstanceSource;
  readonly trustDomain: string;
  private version = '0';
  private cache = new Map<string, Promise<Snapshot>>();

  constructor(store: Store, registry: InstanceSource, trustDomain: string) {
    this.store = store;
    this.registry = registry;
    this.trustDomain = trustDomain;
  }

  /** Starts a new version at startup, above every version served before a restart. */
  async init(): Promise<string> {
    return this.bump();
  }

  get currentVersion(): string {
    return this.version;
  }

  /** Moves to a new version (call after resources or the registry changed). */
  async bump(): Promise<string> {
    const n = await this.store.increment(VERSION_COUNTER);
    this.version = String(n);
    this.cache = new Map();
    return this.version;
  }

  /** The snapshot for `service` at the current version. */
  snapshotFor(service: string): Promise<Snapshot> {
    let cached = this.cache.get(service);
    if (!cached) {
      const version = this.version;
      const instances = this.registry.list();
      cached = this.store.listResources().then((resources) =>
        compileSnapshot({ service, version, trustDomain: this.trustDomain, resources, instances }));
      const cache = this.cache;
      const entry = cached;
      entry.catch(() => { if (cache.get(service) === entry) cache.delete(service); });
      cache.set(service, entry);
    }
    return cached;
  }
}
