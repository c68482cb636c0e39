import type { Balancer, BalancerFactory, PickContext } from '../balancer.js';
import type { EndpointState } from '../endpoint-state.js';
import { defaultRandom, EndpointSampler } from './common.js';

/** Uniform among the available endpoints. */
export class RandomBalancer implements Balancer {
  readonly type = 'Random';
  private readonly sampler: EndpointSampler;

  constructor(endpoints: readonly EndpointState[], random: () => number) {
    this.sampler = new EndpointSampler(endpoints, random);
  }

  pick(ctx: PickContext): EndpointState | undefined {
    return this.sampler.pickOne(ctx.now, ctx.exclude);
  }
}

export const random: BalancerFactory = (endpoints, options) => new RandomBalancer(endpoints, defaultRandom(options.random));
