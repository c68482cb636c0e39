/**
 * The terminal outbound filter: picks a backend by weight, an endpoint by the cluster's balancer,
 * and forwards over the pooled mTLS HTTP/2 session to that peer's inbound listener.
 * A connect failure never sent the request, so another endpoint is tried (at most 3 in all).
 */
import { MeshError } from '../../api/errors.js';
import type { BackendRef } from '../../api/schema/resources.js';
import type { HttpFilter, MeshRequest, MeshResponse } from '../pipeline/types.js';
import type { ProxyServices } from '../runtime/services.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import { outcomeOf } from '../upstream/cluster.js';
import type { EndpointState } from '../upstream/endpoint-state.js';
import { h2Forward } from '../upstream/h2-forward.js';
import { WeightedPicker } from '../routing/weighted.js';

const MAX_CONNECT_ATTEMPTS = 3;

export interface Backend {
  cluster: ClusterRuntime;
  subset?: Readonly<Record<string, string>>;
}

export class Router implements HttpFilter {
  readonly name = 'router';
  private readonly picker: WeightedPicker<Backend>;

  constructor(
    backends: ReadonlyArray<{ backend: Backend; weight: number }>,
    private readonly services: ProxyServices,
  ) {
    this.picker = new WeightedPicker(backends.map((b) => ({ item: b.backend, weight: b.weight })));
  }

  async handle(req: MeshRequest): Promise<MeshResponse> {
    const backend = this.picker.pick();
    if (!backend) throw new MeshError('NO_HEALTHY_UPSTREAM', `no backend for ${req.destination}`);
    const { cluster } = backend;
    const balancer = cluster.balancer(backend.subset);
    const hashKey = cluster.hashKey?.(req);
    let tried: Set<EndpointState> | undefined;
    let lastError: MeshError | undefined;
    for (let attempt = 0; attempt < MAX_CONNECT_ATTEMPTS; attempt++) {
      const ep = balancer.pick({ now: performance.now(), hashKey, exclude: tried });
      if (!ep || tried?.has(ep)) break;
      (tried ??= new Set()).add(ep);
      let session = this.services.peers.connectedSession(ep.address, cluster.name); // no await when the session is up
      if (!session) try {
        session = await this.services.peers.session(ep.address, cluster.name, cluster.connectTimeoutMs, cluster.idleTimeoutMs);
      } catch (err) {
        cluster.record(ep, 'gateway-error');
        lastError = err instanceof MeshError ? err : new MeshError('UPSTREAM_CONNECT_FAILED', String(err));
        continue;
      }
      req.attrs.upstreamAddress = ep.address;
      req.attrs.upstreamInstance = ep.id;
      ep.inflight++;
      const started = performance.now();
      try {
        return await h2Forward(session, req, 'https', {
          done: (status, error) => {
            ep.inflight--;
            const now = performance.now();
            ep.observeLatency(now - started, now);
            cluster.record(ep, status === undefined || error ? 'gateway-error' : outcomeOf(status));
          },
        });
      } catch (err) {
        // A refused stream was never processed; without a body to replay it can go elsewhere.
        if (err instanceof MeshError && err.refused && hasNoBody(req)) {
          lastError = err;
          continue;
        }
        throw err;
      }
    }
    throw lastError ?? new MeshError('NO_HEALTHY_UPSTREAM', `no healthy instance of ${cluster.name}`);
  }
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
