/**
 * The terminal outbound filter: picks a backend by weight, an endpoint by the cluster's balancer,
 * and forwards to that peer's inbound listener over mTLS in the service's protocol: HTTP/1.1 services
 * over the peer's keep-alive HTTP/1.1 pool (whatever protocol the request arrived in, as Istio does by
 * default: the app behind the peer speaks HTTP/1.1 anyway), HTTP/2 and gRPC services over its
 * multiplexed HTTP/2 session (upstream/peer-pool.ts).
 * A connect failure never sent the request, so another endpoint is tried (at most 3 in all).
 */
import { MeshError } from '../../api/errors.js';
import type { BackendRef } from '../../api/schema/resources.js';
import type { HttpFilter, MeshRequest, MeshResponse } from '../pipeline/types.js';
import type { ProxyServices } from '../runtime/services.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import { outcomeOf } from '../upstream/cluster.js';
import type { EndpointState } from '../upstream/endpoint-state.js';
import { h2Forward, type ForwardObserver } from '../upstream/h2-forward.js';
import { h1Forward } from '../upstream/h1-forward.js';
import { PEER_H1_MAX_QUEUED, PEER_H1_MAX_SOCKETS } from '../upstream/peer-pool.js';
import { WeightedPicker } from '../routing/weighted.js';

const MAX_CONNECT_ATTEMPTS = 3;

export interface Backend {
  cluster: ClusterRuntime;
  subset?: Readonly<Record<string, string>>;
}

/** Sends one request to one endpoint of a cluster (the endpoint's inflight/outcome bookkeeping included). */
type PeerForward = (cluster: ClusterRuntime, ep: EndpointState, req: MeshRequest) => Promise<MeshResponse>;

interface RoutedBackend extends Backend {
  forward: PeerForward;
}

export class Router implements HttpFilter {
  readonly name = 'router';
  private readonly picker: WeightedPicker<RoutedBackend>;

  constructor(
    backends: ReadonlyArray<{ backend: Backend; weight: number }>,
    private readonly services: ProxyServices,
  ) {
    this.picker = new WeightedPicker(backends.map((b) => ({
      item: { ...b.backend, forward: b.backend.cluster.config.protocol === 'http' ? this.forwardH1 : this.forwardH2 },
      weight: b.weight,
    })));
  }

  async handle(req: MeshRequest): Promise<MeshResponse> {
    const backend = this.picker.pick();
    if (!backend) throw new MeshError('NO_HEALTHY_UPSTREAM', `no backend for ${req.destination}`);
    const { cluster, forward } = backend;
    const balancer = cluster.balancer(backend.subset);
    const hashKey = cluster.hashKey?.(req);
    let tried: Set<EndpointState> | undefined;
    let lastError: MeshError | undefined;
    for (let attempt = 0; attempt < MAX_CONNECT_ATTEMPTS; attempt++) {
      const ep = balancer.pick({ now: performance.now(), hashKey, exclude: tried });
      if (!ep || tried?.has(ep)) break;
      (tried ??= new Set()).add(ep);
      req.attrs.upstreamAddress = ep.address;
      req.attrs.upstreamInstance = ep.id;
      try {
        return await forward(cluster, ep, req);
      } catch (err) {
        // Refused: nothing reached the peer (no connection, a refused stream, a stale keep-alive
        // connection). Another endpoint may take it when the body is unread (connect failures) or empty.
        if (err instanceof MeshError && err.refused && (err.code === 'UPSTREAM_CONNECT_FAILED' || hasNoBody(req))) {
          lastError = err;
          continue;
        }
        throw err;
      }
    }
    throw lastError ?? new MeshError('NO_HEALTHY_UPSTREAM', `no healthy instance of ${cluster.name}`);
  }

  /** HTTP/2 and gRPC services: one stream on the peer's pooled HTTP/2 session. */
  private readonly forwardH2: PeerForward = async (cluster, ep, req) => {
    let session = this.services.peers.connectedSession(ep.address, cluster.name); // no await when the session is up
    if (!session) try {
      session = await this.services.peers.session(ep.address, cluster.name, cluster.connectTimeoutMs, cluster.idleTimeoutMs);
    } catch (err) {
      cluster.record(ep, 'gateway-error');
      throw new MeshError('UPSTREAM_CONNECT_FAILED', err instanceof Error ? err.message : String(err), { refused: true });
    }
    return h2Forward(session, req, 'https', exchange(cluster, ep));
  };

  /** HTTP/1.1 services: one exchange on the peer's keep-alive HTTP/1.1 mTLS pool. */
  private readonly forwardH1: PeerForward = (cluster, ep, req) => {
    const pool = this.services.peers.h1(ep.address, cluster.name, cluster.connectTimeoutMs, cluster.idleTimeoutMs);
    if (pool.inflight >= PEER_H1_MAX_SOCKETS + PEER_H1_MAX_QUEUED) {
      this.services.metrics.circuitBreakerOverflows.labels({ destination: cluster.name, limit: 'peerQueue' }).inc();
      return Promise.reject(new MeshError('CIRCUIT_OPEN', `${PEER_H1_MAX_QUEUED} requests already wait for a connection to ${ep.address}`));
    }
    pool.inflight++;
    return h1Forward(pool, req, exchange(cluster, ep, () => { pool.inflight--; }));
  };
}

/**
 * The endpoint's bookkeeping for one exchange: in flight from now until the forwarder's `done`, then
 * its latency (peak-EWMA) and outcome (outlier detection) recorded, unless the peer refused it unseen.
 */
function exchange(cluster: ClusterRuntime, ep: EndpointState, onDone?: () => void): ForwardObserver {
  ep.inflight++;
  const started = performance.now();
  return {
    done: (status, error) => {
      onDone?.();
      ep.inflight--;
      // Refused before any processing (a stale keep-alive connection, a draining peer's REFUSED_STREAM):
      // says nothing about the endpoint's health, so neither latency nor outcome is recorded.
      if (error instanceof MeshError && error.refused && error.code === 'UPSTREAM_RESET') return;
      const now = performance.now();
      ep.observeLatency(now - started, now);
      cluster.record(ep, status === undefined || error ? 'gateway-error' : outcomeOf(status));
    },
  };
}

/** Resolves a rule's backendRefs to clusters (missing services are dropped; NACK happens at build). */
export function resolveBackends(
  refs: readonly BackendRef[] | undefined, parent: string, clusters: ReadonlyMap<string, ClusterRuntime>,
): Array<{ backend: Backend; weight: number }> {
  const list = refs && refs.length > 0 ? refs : [{ name: parent, weight: 1 } as BackendRef];
  const out: Array<{ backend: Backend; weight: number }> = [];
  for (const ref of list) {
    const cluster = clusters.get(ref.name);
    if (!cluster) throw new Error(`backendRef names unknown service "${ref.name}"`);
    out.push({ backend: { cluster, subset: ref.subset }, weight: ref.weight });
  }
  return out;
}

/** A request whose body is known to be empty, so it can be sent again as is. */
function hasNoBody(req: MeshRequest): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length === '0';
  return req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS' || req.method === 'DELETE';
}
