import type { Balancer, BalancerFactory, PickContext } from '../balancer.js';
import type { EndpointState } from '../endpoint-state.js';
import { defaultRandom, EndpointSampler } from './common.js';

const inflight = (ep: EndpointState): number => ep.inflight;

/** Power of two choices on requests in flight. */
export class LeastRequestBalancer implements Balancer {
  readonly type = 'LeastRequest';
  private readonly sampler: EndpointSampler;

  constructor(endpoints: readonly EndpointState[], random: () => number) {
    this.sampler = new EndpointSampler(endpoints, random);
  }

  pick(ctx: PickContext): EndpointState | undefined {
    return this.sampler.pickTwo(ctx.now, ctx.exclude, inflight);
  }
}

export const leastRequest: BalancerFactory = (endpoints, options) => new LeastRequestBalancer(endpoints, defaultRandom(options.random));
