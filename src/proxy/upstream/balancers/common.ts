/**
 * Shared selection machinery for the balancers. Selection works in two tiers: first among
 * endpoints that are available and not in ctx.exclude, then (only if that tier is empty) among the
 * available excluded ones, so a retry avoids the endpoints it already tried when it can.
 */
import type { EndpointState } from '../endpoint-state.js';

/** Rejection-sampling attempts before falling back to a full scan. */
const SAMPLE_ATTEMPTS = 4;

export function isEligible(ep: EndpointState, now: number, exclude: ReadonlySet<EndpointState> | undefined, allowExcluded: boolean): boolean {
  return ep.available(now) && (allowExcluded || exclude === undefined || !exclude.has(ep));
}

/**
 * Uniform random sampling among the eligible endpoints of a fixed list. The common case (most
 * endpoints eligible) costs a few random draws; otherwise one scan into a preallocated buffer.
 * Both paths are uniform over the eligible set, so their mixture is too.
 */
export class EndpointSampler {
  private readonly scratch: Int32Array;

  constructor(readonly endpoints: readonly EndpointState[], private readonly random: () => number) {
    this.scratch = new Int32Array(endpoints.length);
  }

  /** Index of a uniformly chosen eligible endpoint other than `skip`, or -1 when there is none. */
  sample(now: number, exclude: ReadonlySet<EndpointState> | undefined, allowExcluded: boolean, skip = -1): number {
    const eps = this.endpoints;
    const n = eps.length;
    if (n === 0) return -1;
    for (let attempt = 0; attempt < SAMPLE_ATTEMPTS; attempt++) {
      const i = this.index(n);
      if (i !== skip && isEligible(eps[i]!, now, exclude, allowExcluded)) return i;
    }
    let count = 0;
    for (let i = 0; i < n; i++) {
      if (i !== skip && isEligible(eps[i]!, now, exclude, allowExcluded)) this.scratch[count++] = i;
    }
    return count === 0 ? -1 : this.scratch[this.index(count)]!;
  }

  /** Random integer in [0, n). */
  index(n: number): number {
    const i = Math.floor(this.random() * n);
    return i >= n ? n - 1 : i < 0 ? 0 : i;
  }

  /** A uniformly random available endpoint, preferring non-excluded ones. */
  pickOne(now: number, exclude: ReadonlySet<EndpointState> | undefined): EndpointState | undefined {
    let i = this.sample(now, exclude, false);
    if (i < 0 && exclude !== undefined && exclude.size > 0) i = this.sample(now, exclude, true);
    return i < 0 ? undefined : this.endpoints[i];
  }

  /**
   * Power of two choices: two distinct random eligible endpoints (same tier), the one with the
   * lower `load` wins (ties go to the first draw, itself random). One eligible endpoint → it.
   */
  pickTwo(now: number, exclude: ReadonlySet<EndpointState> | undefined, load: (ep: EndpointState) => number): EndpointState | undefined {
    let allowExcluded = false;
    let a = this.sample(now, exclude, false);
    if (a < 0 && exclude !== undefined && exclude.size > 0) {
      allowExcluded = true;
      a = this.sample(now, exclude, true);
    }
    if (a < 0) return undefined;
    const first = this.endpoints[a]!;
    const b = this.sample(now, exclude, allowExcluded, a);
    if (b < 0) return first;
    const second = this.endpoints[b]!;
    return load(second) < load(first) ? second : first;
  }
}

export function defaultRandom(random: (() => number) | undefined): () => number {
  return random ?? Math.random;
}
