/**
 * Turns one validated Snapshot into everything the data path needs, once: clusters (endpoints,
 * balancers, health checking, outlier detection), one outbound chain per destination service,
 * the inbound chain, and TCP backends. Any error here makes the proxy NACK the version.
 * The result is immutable; a new version builds a new one and the proxy swaps it in atomically.
 */
import { MeshError } from '../../api/errors.js';
import type { ClusterConfig, Snapshot } from '../../api/schema/snapshot.js';
import { composeChain } from '../pipeline/chain.js';
import type { BuildContext } from '../pipeline/factory.js';
import type { HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';
import { RULE_FILTERS, SERVICE_INBOUND, SERVICE_OUTBOUND } from '../filters/registry.js';
import { Router, resolveBackends, type Backend } from '../filters/router.js';
import { compileRouteTable, type RouteTable } from '../routing/route-table.js';
import { WeightedPicker } from '../routing/weighted.js';
import { ClusterRuntime } from '../upstream/cluster.js';
import type { Probe } from '../upstream/health-checker.js';
import type { EndpointState } from '../upstream/endpoint-state.js';
import type { ProxyServices } from './services.js';
import { compileAuthz, type AuthzEngine } from '../authz/engine.js';
import { buildAccessLogger, stdoutLineWriter, type AccessLogger } from '../access-log.js';

export interface CompiledConfig {
  readonly version: string;
  readonly snapshot: Snapshot;
  readonly clusters: ReadonlyMap<string, ClusterRuntime>;
  /** Route tables of the destinations whose outbound chain is built (those with HTTPRoutes, then on first use). */
  readonly routeTables: ReadonlyMap<string, RouteTable>;
  /** The outbound chain for a destination service, or undefined when the mesh has no such service. */
  outbound(service: string): Next | undefined;
  readonly inbound: Next;
  /** The same authorization engine the inbound HTTP chain uses, for byte tunnels (TCP, WebSocket upgrades). */
  readonly inboundAuthz: AuthzEngine;
  /** Weighted TCP backends for a destination service (TCPRoute, else the service itself). */
  tcpBackend(service: string): Backend | undefined;
  /** MeshConfig.accessLog of this version; undefined (nothing to do per request) when absent. */
  readonly accessLog: AccessLogger | undefined;
  /** Stops every cluster's timers (health checks, outlier sweeps). */
  dispose(): void;
  /** Swapped out for `next`: stops the clusters `next` did not carry over. */
  retire(next: CompiledConfig): void;
}

/**
 * With `previous`, a cluster whose ClusterConfig is the very same object as in the previous version (an
 * unchanged cluster carried over by a delta) keeps its ClusterRuntime — balancers, health checker and
 * outlier detector go on as in Envoy for an unchanged cluster; everything else (chains, route tables,
 * per-version filter state) is built anew.
 */
export function compileConfig(snapshot: Snapshot, services: ProxyServices, probeFor: (cluster: ClusterConfig) => Probe, previous?: CompiledConfig): CompiledConfig {
  const clusters = new Map<string, ClusterRuntime>();
  const built: ClusterRuntime[] = [];
  const ctx: BuildContext = { snapshot, services, self: services.service, clusters };
  const live = new Set<EndpointState>();
  const liveAddresses = new Set<string>();
  try {
    for (const [name, config] of Object.entries(snapshot.clusters)) {
      const kept = previous?.clusters.get(name);
      if (kept && kept.config === config) {
        clusters.set(name, kept);
        continue;
      }
      const endpoints = services.endpoints.resolve(name, config.endpoints);
      for (const ep of endpoints) { live.add(ep); liveAddresses.add(ep.address); }
      const cluster = new ClusterRuntime(config, endpoints, {
        probe: probeFor(config),
        onEject: (service) => services.metrics.outlierEjections.labels({ destination: service }).inc(),
      });
      built.push(cluster);
      clusters.set(name, cluster);
    }

    // A route may still name a service that was deleted since: it gets an empty cluster, so its
    // traffic answers 503 NO_HEALTHY_UPSTREAM rather than the whole config being refused.
    for (const name of referencedServices(snapshot)) {
      if (clusters.has(name)) continue;
      services.log.warn('a route references a service that does not exist', { service: name });
      const empty: ClusterConfig = { name, protocol: 'http', endpoints: [] };
      const cluster = new ClusterRuntime(empty, [], { probe: probeFor(empty) });
      built.push(cluster);
      clusters.set(name, cluster);
    }
    const declared = new Set(Object.keys(snapshot.clusters));

    const routeTables = new Map<string, RouteTable>();
    const outbound = new Map<string, Next>();
    const buildOutbound = (name: string): Next => {
      const table = compileRouteTable(name, snapshot.httpRoutes);
      routeTables.set(name, table);
      const ruleChains = new Map<string, Next>();
      for (const compiled of table.rules) {
        const filters = buildAll(RULE_FILTERS.map((f) => () => f.build(ctx, compiled.rule, compiled.routeName, name)));
        const router = new Router(resolveBackends(compiled.rule.backendRefs, name, clusters), services);
        ruleChains.set(compiled.name, composeChain(filters, (req) => router.handle(req)));
      }
      const dispatch: Next = (req: MeshRequest): Promise<MeshResponse> => {
        const rule = table.match(req);
        if (!rule) return Promise.reject(new MeshError('NO_ROUTE', `no route of ${name} matches ${req.method} ${req.path}`));
        req.attrs.route = rule.name;
        return ruleChains.get(rule.name)!(req);
      };
      const cluster = clusters.get(name);
      const chain = composeChain(buildAll(SERVICE_OUTBOUND.map((f) => () => f.build(ctx, name, cluster))), dispatch);
      outbound.set(name, chain);
      return chain;
    };
    // Destinations with HTTPRoutes are built now: a route's filters can be invalid, and that must NACK the
    // version. The others have only the default route (their TrafficPolicy, validated by the schema): built
    // on first use, once per version — a proxy of a 1,000-service mesh calls a few of them.
    const routed = new Set<string>();
    for (const route of snapshot.httpRoutes) for (const p of route.spec.parentRefs) routed.add(p.name);
    // Unless nothing they depend on changed since `previous`, which built them then (the same route objects
    // attached, MeshConfig and cluster).
    const attached = (routes: Snapshot['httpRoutes']) => {
      const m = new Map<string, unknown[]>();
      for (const r of routes) for (const p of r.spec.parentRefs) { let l = m.get(p.name); if (!l) m.set(p.name, (l = [])); l.push(r); }
      return m;
    };
    const nowAttached = previous ? attached(snapshot.httpRoutes) : undefined;
    const prevAttached = previous ? (snapshot.httpRoutes === previous.snapshot.httpRoutes ? nowAttached : attached(previous.snapshot.httpRoutes)) : undefined;
    const sameRoutes = (name: string) => {
      const a = nowAttached!.get(name) ?? [];
      const b = prevAttached!.get(name) ?? [];
      return a.length === b.length && a.every((r, i) => r === b[i]);
    };
    const unchanged = (name: string) => previous !== undefined && snapshot.meshConfig === previous.snapshot.meshConfig
      && clusters.get(name) === previous.clusters.get(name) && sameRoutes(name);
    for (const name of declared) if (routed.has(name) && !unchanged(name)) buildOutbound(name);
    const lazyOutbound = (name: string): Next => {
      try {
        return buildOutbound(name);
      } catch (err) {
        services.log.error('could not build the outbound chain', { service: name, error: (err as Error).message });
        const failed: Next = () => Promise.reject(new MeshError('NO_ROUTE', `the route to ${name} could not be built: ${(err as Error).message}`));
        outbound.set(name, failed);
        return failed;
      }
    };

    const inboundFilters = buildAll(SERVICE_INBOUND.map((f) => () => f.build(ctx, services.service, clusters.get(services.service))));
    const inbound = composeChain(inboundFilters, (req) => services.app.forward(req));

    const tcpPickers = new Map<string, WeightedPicker<Backend>>();
    const tcpPicker = (name: string): WeightedPicker<Backend> => {
      let picker = tcpPickers.get(name);
      if (!picker) {
        const route = snapshot.tcpRoutes.find((r) => r.spec.parentRefs.some((p) => p.name === name));
        const refs = route ? route.spec.rules.flatMap((rule) => rule.backendRefs) : undefined;
        picker = new WeightedPicker(resolveBackends(refs, name, clusters).map((b) => ({ item: b.backend, weight: b.weight })));
        tcpPickers.set(name, picker);
      }
      return picker;
    };
    // TCPRoute backends are checked now (an unknown backend must NACK), the plain services on first use.
    for (const route of snapshot.tcpRoutes) for (const p of route.spec.parentRefs) if (declared.has(p.name)) tcpPicker(p.name);

    if (!previous) {
      services.endpoints.retain(live);
      services.peers.retain(liveAddresses);
    } else {
      // Only the clusters not carried over can have lost endpoints: forget those, and close peer sessions
      // to addresses no endpoint has any more.
      const gone: Array<{ service: string; state: EndpointState }> = [];
      for (const [name, old] of previous.clusters) {
        if (clusters.get(name) === old) continue;
        for (const state of old.endpoints) if (!live.has(state)) gone.push({ service: name, state });
      }
      if (gone.length > 0) {
        services.endpoints.forget(gone);
        const addresses = new Set<string>();
        for (const c of clusters.values()) for (const ep of c.endpoints) addresses.add(ep.address);
        services.peers.retain(addresses);
      }
    }
    const inboundAuthz = compileAuthz(services.service, snapshot.authorizationPolicies, snapshot.meshConfig.authorization.default, snapshot.meshConfig.mtls);
    return {
      inboundAuthz,
      version: snapshot.version,
      snapshot,
      clusters,
      routeTables,
      outbound: (service) => outbound.get(service) ?? (declared.has(service) ? lazyOutbound(service) : undefined),
      inbound,
      tcpBackend: (service) => (declared.has(service) ? tcpPicker(service).pick() : undefined),
      accessLog: buildAccessLogger(snapshot.meshConfig, () => stdoutLineWriter(() => services.metrics.accessLogDropped.inc())),
      dispose: () => { for (const c of clusters.values()) c.dispose(); },
      retire: (next) => {
        const carried = new Set(next.clusters.values());
        for (const c of clusters.values()) if (!carried.has(c)) c.dispose();
      },
    };
  } catch (err) {
    // Only what this call built: carried-over clusters still belong to the previous version.
    for (const c of built) c.dispose();
    throw err;
  }
}

function buildAll(builders: Array<() => HttpFilter | null>): HttpFilter[] {
  const out: HttpFilter[] = [];
  for (const build of builders) {
    const filter = build();
    if (filter) out.push(filter);
  }
  return out;
}

/** Every service a route or mirror names as a backend. */
function referencedServices(snapshot: Snapshot): Set<string> {
  const names = new Set<string>();
  for (const route of snapshot.httpRoutes) {
    for (const rule of route.spec.rules) {
      for (const ref of rule.backendRefs ?? []) names.add(ref.name);
      for (const f of rule.filters ?? []) if (f.type === 'RequestMirror') names.add(f.requestMirror.backendRef.name);
    }
  }
  for (const route of snapshot.tcpRoutes) for (const rule of route.spec.rules) for (const ref of rule.backendRefs) names.add(ref.name);
  return names;
}
