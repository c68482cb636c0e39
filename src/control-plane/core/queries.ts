/**
 * Read models for the API: services (resources ∪ registry), one service described, proxy states.
 */
import type { Protocol } from '../../api/schema/common.js';
import type { Resource, ResourceOf } from '../../api/schema/resources.js';
import { spiffeIdFor } from '../../pki/index.js';
import type { InstanceView, ProxiesResponse, ProxyState, ServiceDescription, ServiceSummary } from '../contract.js';
import type { ProxyTracker } from './proxies.js';
import type { Registry, InstanceState } from './registry.js';
import { serviceReferences } from './resource-service.js';
import { isDraining } from './compiler.js';
import type { Store } from './ports.js';

export class MeshQueries {
  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly proxies: ProxyTracker,
    private readonly trustDomain: string,
    private readonly currentVersion: () => string,
  ) {}

  async services(): Promise<ServiceSummary[]> {
    const resources = (await this.store.listResources('Service')) as ResourceOf<'Service'>[];
    const byName = new Map(resources.map((r) => [r.metadata.name, r]));
    const names = new Set([...byName.keys(), ...this.registry.serviceNames()]);
    return [...names].sort().map((name) => this.summary(name, byName.get(name), this.registry.instancesOf(name)));
  }

  private summary(name: string, resource: ResourceOf<'Service'> | undefined, instances: InstanceState[]): ServiceSummary {
    const firstInstance = [...instances].sort((a, b) => (a.registeredAt < b.registeredAt ? -1 : 1))[0];
    const protocol: Protocol = resource?.spec.protocol ?? firstInstance?.info.protocol ?? 'http';
    return {
      name,
      protocol,
      ...(resource?.spec.port !== undefined ? { port: resource.spec.port } : {}),
      source: resource && instances.length > 0 ? 'both' : resource ? 'resource' : 'registry',
      instances: instances.length,
      connected: instances.filter((i) => i.connected).length,
    };
  }

  /** Undefined when the service is neither a resource nor registered. */
  async describeService(name: string): Promise<ServiceDescription | undefined> {
    const all = await this.store.listResources();
    const resource = all.find((r): r is ResourceOf<'Service'> => r.kind === 'Service' && r.metadata.name === name);
    const instances = this.registry.instancesOf(name);
    if (!resource && instances.length === 0) return undefined;
    const references = (r: Resource) => serviceReferences(r).some((ref) => ref.name === name);
    const views: InstanceView[] = instances.map((i) => {
      // On another control plane: what this one tracked (if anything) is stale.
      const p = i.elsewhere ? undefined : this.proxies.get(i.info.id);
      return {
        id: i.info.id,
        address: i.info.address,
        labels: { ...i.info.labels },
        protocol: i.info.protocol,
        connected: i.connected,
        draining: isDraining(i),
        registeredAt: i.registeredAt,
        ...(i.disconnectedAt && !i.connected ? { disconnectedAt: i.disconnectedAt } : {}),
        ...(p?.lastSentVersion !== undefined ? { lastSentVersion: p.lastSentVersion } : {}),
        ...(p?.ackedVersion !== undefined ? { ackedVersion: p.ackedVersion } : {}),
        ...(p?.lastNack ? { lastNack: p.lastNack } : {}),
        ...(p?.certNotAfter ? { certNotAfter: p.certNotAfter } : {}),
      };
    });
    const summary = this.summary(name, resource, instances);
    return {
      name,
      protocol: summary.protocol,
      ...(summary.port !== undefined ? { port: summary.port } : {}),
      source: summary.source,
      spiffeId: spiffeIdFor(this.trustDomain, name),
      ...(resource ? { resource } : {}),
      instances: views,
      routes: all.filter((r) => (r.kind === 'HTTPRoute' || r.kind === 'TCPRoute') && references(r)),
      policies: all.filter((r) => (r.kind === 'TrafficPolicy' || r.kind === 'AuthorizationPolicy' || r.kind === 'JWTAuthentication') && references(r)),
      rollouts: all.filter((r) => r.kind === 'Rollout' && references(r)),
    };
  }

  /** Every proxy the registry knows (including disconnected ones in their grace period). */
  proxyStates(): ProxiesResponse {
    const tracked = new Map(this.proxies.list().map((p) => [p.instanceId, p]));
    const out: ProxyState[] = [];
    for (const inst of this.registry.list()) {
      const p = inst.elsewhere ? undefined : tracked.get(inst.info.id);
      if (p) {
        out.push({ ...p, connected: inst.connected, ...(inst.connected ? {} : { disconnectedAt: inst.disconnectedAt ?? p.disconnectedAt }) });
      } else {
        out.push({
          instanceId: inst.info.id,
          service: inst.info.service,
          address: inst.info.address,
          protocol: inst.info.protocol,
          labels: { ...inst.info.labels },
          ...(inst.info.version !== undefined ? { proxyVersion: inst.info.version } : {}),
          connected: inst.connected,
          ...(inst.elsewhere ? { connectedElsewhere: true } : {}),
          ...(inst.connectedAt ? { connectedAt: inst.connectedAt } : {}),
          ...(inst.disconnectedAt ? { disconnectedAt: inst.disconnectedAt } : {}),
        });
      }
    }
    return { version: this.currentVersion(), proxies: out };
  }
}
