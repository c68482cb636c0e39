import type { Balancer, BalancerFactory, PickContext } from '../balancer.js';
import type { EndpointState } from '../endpoint-state.js';
import { defaultRandom } from './common.js';

/**
 * Rotating cursor over the fixed endpoint list, skipping unavailable (and, when possible, excluded)
 * endpoints. The starting position is random so that many proxies built at the same moment do not
 * all send their first requests to the same endpoint.
 */
export class RoundRobinBalancer implements Balancer {
  readonly type = 'RoundRobin';
  private cursor: number;

  constructor(private readonly endpoints: readonly EndpointState[], random: () => number) {
    const n = endpoints.length;
    this.cursor = n > 0 ? Math.min(n - 1, Math.floor(random() * n)) : 0;
  }

  pick(ctx: PickContext): EndpointState | undefined {
    const eps = this.endpoints;
    const n = eps.length;
    const exclude = ctx.exclude !== undefined && ctx.exclude.size > 0 ? ctx.exclude : undefined;
    let fallback = -1;
    for (let step = 0; step < n; step++) {
      let i = this.cursor + step;
      if (i >= n) i -= n;
      const ep = eps[i]!;
      if (!ep.available(ctx.now)) continue;
      if (exclude !== undefined && exclude.has(ep)) {
        if (fallback < 0) fallback = i;
        continue;
      }
      return this.take(i);
    }
    return fallback < 0 ? undefined : this.take(fallback);
  }

  private take(i: number): EndpointState {
    const n = this.endpoints.length;
    this.cursor = i + 1 >= n ? 0 : i + 1;
    return this.endpoints[i]!;
  }
}

export const roundRobin: BalancerFactory = (endpoints, options) => new RoundRobinBalancer(endpoints, defaultRandom(options.random));
