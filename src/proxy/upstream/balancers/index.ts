/** Balancer registry, keyed by TrafficPolicy.loadBalancer.type. */
import type { Balancer, BalancerFactory, BalancerOptions } from '../balancer.js';
import type { EndpointState } from '../endpoint-state.js';
import { ewma } from './ewma.js';
import { leastRequest } from './least-request.js';
import { random } from './random.js';
import { ringHash } from './ring-hash.js';
import { roundRobin } from './round-robin.js';

export type BalancerType = 'RoundRobin' | 'LeastRequest' | 'EWMA' | 'Random' | 'RingHash';

export const BALANCERS: Record<BalancerType, BalancerFactory> = {
  RoundRobin: roundRobin,
  LeastRequest: leastRequest,
  EWMA: ewma,
  Random: random,
  RingHash: ringHash,
};

export const DEFAULT_BALANCER: BalancerType = 'RoundRobin';

export function isBalancerType(type: string): type is BalancerType {
  return Object.prototype.hasOwnProperty.call(BALANCERS, type);
}

/**
 * Builds the balancer for a fixed endpoint list. An absent type means RoundRobin; an unknown one
 * throws (the schema admits only the registered names, so this is a config bug worth NACKing).
 */
export function createBalancer(type: string | undefined, endpoints: readonly EndpointState[], options: BalancerOptions = {}): Balancer {
  const name = type === undefined || type === '' ? DEFAULT_BALANCER : type;
  if (!isBalancerType(name)) throw new Error(`unknown load balancer type "${name}" (expected one of ${Object.keys(BALANCERS).join(', ')})`);
  return BALANCERS[name](endpoints, options);
}

export { RoundRobinBalancer } from './round-robin.js';
export { LeastRequestBalancer } from './least-request.js';
export { EwmaBalancer } from './ewma.js';
export { RandomBalancer } from './random.js';
export { RingHashBalancer, hash32, RING_VNODES } from './ring-hash.js';
