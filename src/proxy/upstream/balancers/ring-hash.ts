import type { Balancer, BalancerFactory, PickContext } from '../balancer.js';
import type { EndpointState } from '../endpoint-state.js';
import { defaultRandom, EndpointSampler } from './common.js';

/** Virtual nodes per endpoint on the ring. */
export const RING_VNODES = 100;

/** 32-bit FNV-1a over the string's UTF-16 code units, then murmur3's fmix32 to spread every bit. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Consistent hashing (Karger ring). Ring points depend only on each endpoint's key(), so removing an
 * endpoint moves only the keys that were on it. A key goes to the first point clockwise from its
 * hash whose endpoint is available and not excluded (an available excluded one as the last resort).
 * Without a hashKey the pick is uniform random.
 */
export class RingHashBalancer implements Balancer {
  readonly type = 'RingHash';
  private readonly hashes: Uint32Array;
  private readonly owners: Int32Array;
  private readonly sampler: EndpointSampler;

  constructor(private readonly endpoints: readonly EndpointState[], random: () => number) {
    this.sampler = new EndpointSampler(endpoints, random);
    const points: { hash: number; owner: number; tie: string }[] = [];
    endpoints.forEach((ep, owner) => {
      const key = ep.key();
      for (let v = 0; v < RING_VNODES; v++) points.push({ hash: hash32(`${key}#${v}`), owner, tie: key });
    });
    // Equal hashes are ordered by endpoint key, so the ring does not depend on the list order.
    points.sort((a, b) => a.hash - b.hash || (a.tie < b.tie ? -1 : a.tie > b.tie ? 1 : 0));
    this.hashes = Uint32Array.from(points, (p) => p.hash);
    this.owners = Int32Array.from(points, (p) => p.owner);
  }

  pick(ctx: PickContext): EndpointState | undefined {
    if (ctx.hashKey === undefined) return this.sampler.pickOne(ctx.now, ctx.exclude);
    const hashes = this.hashes;
    const size = hashes.length;
    if (size === 0) return undefined;
    const h = hash32(ctx.hashKey);
    // First point with hash >= h (wrapping to 0).
    let lo = 0;
    let hi = size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (hashes[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    const exclude = ctx.exclude !== undefined && ctx.exclude.size > 0 ? ctx.exclude : undefined;
    let fallback: EndpointState | undefined;
    let last = -1;
    for (let step = 0; step < size; step++) {
      let i = lo + step;
      if (i >= size) i -= size;
      const owner = this.owners[i]!;
      if (owner === last) continue; // consecutive points of the same endpoint: already judged
      last = owner;
      const ep = this.endpoints[owner]!;
      if (!ep.available(ctx.now)) continue;
      if (exclude !== undefined && exclude.has(ep)) {
        fallback ??= ep;
        continue;
      }
      return ep;
    }
    return fallback;
  }
}

export const ringHash: BalancerFactory = (endpoints, options) => new RingHashBalancer(endpoints, defaultRandom(options.random));
