/**
 * Load balancer contract. A balancer is built once per config version for one endpoint set
 * (a service, or a subset of it) and picks per request among the endpoints available now.
 * Implementations live in ./balancers/, registered by TrafficPolicy.loadBalancer.type.
 */
import type { EndpointState } from './endpoint-state.js';

export interface PickContext {
  /** performance.now() ms. */
  now: number;
  /** Hash input for RingHash (header value, cookie value, or source identity); undefined → random. */
  hashKey?: string;
  /** Endpoints to avoid (already tried by this request), honoured when another is available. */
  exclude?: ReadonlySet<EndpointState>;
}

export interface Balancer {
  readonly type: string;
  /** Returns an available endpoint, or undefined when none is. */
  pick(ctx: PickContext): EndpointState | undefined;
}

export type BalancerFactory = (endpoints: readonly EndpointState[], options: BalancerOptions) => Balancer;

export interface BalancerOptions {
  /** Injectable randomness for tests: returns [0, 1). */
  random?: () => number;
}
