import type { Balancer, BalancerFactory, PickContext } from '../balancer.js';
import type { EndpointState } from '../endpoint-state.js';
import { defaultRandom, EndpointSampler } from './common.js';

const cost = (ep: EndpointState): number => ep.cost();

/** Power of two choices on peak-EWMA cost (latency estimate × (inflight + 1)). */
export class EwmaBalancer implements Balancer {
  readonly type = 'EWMA';
  private readonly sampler: EndpointSampler;

  constructor(endpoints: readonly EndpointState[], random: () => number) {
    this.sampler = new EndpointSampler(endpoints, random);
  }

  pick(ctx: PickContext): EndpointState | undefined {
    return this.sampler.pickTwo(ctx.now, ctx.exclude, cost);
  }
}

export const ewma: BalancerFactory = (endpoints, options) => new EwmaBalancer(endpoints, defaultRandom(options.random));
