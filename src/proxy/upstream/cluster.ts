/**
 * One destination service as of one config version: its endpoints, balancers per subset,
 * active health checking and outlier detection. Built once per version, disposed on swap.
 */
import type { ClusterConfig } from '../../api/schema/snapshot.js';
import { parseDuration } from '../../api/duration.js';
import type { Balancer } from './balancer.js';
import { createBalancer } from './balancers/index.js';
import type { EndpointState } from './endpoint-state.js';
import type { MeshRequest } from '../pipeline/types.js';
import { headerValue } from '../http/headers.js';
import { HealthChecker, type Probe } from './health-checker.js';
import { OutlierDetector, type Outcome, type OutlierSpec } from './outlier-detector.js';

/**
 * Without an OutlierDetection policy a cluster still stops sending to an instance that keeps failing
 * to connect (like Linkerd's default failure accrual): 3 consecutive gateway errors eject it for 5s+.
 */
/** Envoy's default connect timeout. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

export const DEFAULT_OUTLIER: OutlierSpec = {
  consecutiveGatewayErrors: 3,
  interval: '5s',
  baseEjectionTime: '5s',
  maxEjectionPercent: 50,
};

export interface ClusterHooks {
  probe: Probe;
  onEject?(service: string, ep: EndpointState, durationMs: number): void;
}

export class ClusterRuntime {
  readonly name: string;
  readonly config: ClusterConfig;
  readonly endpoints: readonly EndpointState[];
  readonly connectTimeoutMs: number;
  /** TrafficPolicy.timeouts.idle: idle TCP tunnels and idle pooled HTTP/2 sessions are closed after it. */
  readonly idleTimeoutMs?: number;
  /** RingHash input for a request, built once from loadBalancer.hashOn; undefined when not hashing. */
  readonly hashKey?: (req: MeshRequest) => string | undefined;
  private readonly balancers = new Map<string, Balancer>();
  private readonly outlier: OutlierDetector;
  private readonly health?: HealthChecker;

  constructor(config: ClusterConfig, endpoints: EndpointState[], hooks: ClusterHooks) {
    this.name = config.name;
    this.config = config;
    this.endpoints = endpoints;
    const policy = config.trafficPolicy;
    this.connectTimeoutMs = policy?.timeouts?.connect ? parseDuration(policy.timeouts.connect) : DEFAULT_CONNECT_TIMEOUT_MS;
    if (policy?.timeouts?.idle) this.idleTimeoutMs = parseDuration(policy.timeouts.idle);
    this.hashKey = hashKeyFunction(policy?.loadBalancer?.hashOn);
    this.outlier = new OutlierDetector(policy?.outlierDetection ?? DEFAULT_OUTLIER, {
      onEject: (ep, ms) => hooks.onEject?.(config.name, ep, ms),
    });
    this.outlier.setEndpoints(endpoints);
    if (policy?.healthCheck) {
      this.health = new HealthChecker(policy.healthCheck, hooks.probe);
      this.health.setEndpoints(endpoints);
    } else {
      // Without active checks nothing would ever mark an endpoint healthy again.
      for (const ep of endpoints) ep.healthy = true;
    }
    // The whole-service balancer is built now; subset balancers on first use (still once per version).
    this.balancers.set('', createBalancer(policy?.loadBalancer?.type, endpoints));
  }

  /** The balancer over the endpoints whose labels include every subset label. */
  balancer(subset?: Readonly<Record<string, string>>): Balancer {
    const key = subset ? subsetKey(subset) : '';
    let balancer = this.balancers.get(key);
    if (!balancer) {
      const members = this.endpoints.filter((ep) => matchesSubset(ep.labels, subset!));
      balancer = createBalancer(this.config.trafficPolicy?.loadBalancer?.type, members);
      this.balancers.set(key, balancer);
    }
    return balancer;
  }

  record(ep: EndpointState, outcome: Outcome): void {
    this.outlier.record(ep, outcome);
  }

  dispose(): void {
    this.outlier.stop();
    this.health?.stop();
  }
}

export function subsetKey(subset: Readonly<Record<string, string>>): string {
  return Object.keys(subset).sort().map((k) => `${k}=${subset[k]}`).join(',');
}

export function matchesSubset(labels: Readonly<Record<string, string>>, subset: Readonly<Record<string, string>>): boolean {
  for (const k in subset) if (labels[k] !== subset[k]) return false;
  return true;
}

/** Maps an upstream HTTP status to an outlier outcome. */
export function outcomeOf(status: number): Outcome {
  if (status === 502 || status === 503 || status === 504) return 'gateway-error';
  if (status >= 500) return 'error-5xx';
  return 'success';
}

type HashOn = NonNullable<NonNullable<ClusterConfig['trafficPolicy']>['loadBalancer']>['hashOn'];

function hashKeyFunction(hashOn: HashOn): ((req: MeshRequest) => string | undefined) | undefined {
  if (!hashOn) return undefined;
  if (hashOn.header) {
    const name = hashOn.header.toLowerCase();
    return (req) => headerValue(req.headers, name);
  }
  if (hashOn.cookie) {
    const prefix = `${hashOn.cookie}=`;
    return (req) => {
      const cookie = headerValue(req.headers, 'cookie');
      if (!cookie) return undefined;
      for (const part of cookie.split(';')) {
        const p = part.trim();
        if (p.startsWith(prefix)) return p.slice(prefix.length);
      }
      return undefined;
    };
  }
  if (hashOn.sourceIdentity) return (req) => req.source.identity ?? req.source.service;
  return undefined;
}
