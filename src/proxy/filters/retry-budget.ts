/**
 * Retry budget (TrafficPolicy.retryBudget), like Linkerd's: over a sliding window of about one second
 * (10 buckets of 100ms), a retry is allowed while, counting it, retries ≤ max(minRetriesPerSecond,
 * percent% of requests). Without a policy: 20% and 10 per second. One budget per destination service
 * per config version (keyed by the snapshot object), shared by every route rule of that service.
 */
import type { Snapshot } from '../../api/schema/snapshot.js';

export const DEFAULT_RETRY_BUDGET = { percent: 20, minRetriesPerSecond: 10 } as const;

const BUCKETS = 10;
const BUCKET_MS = 100;

export class RetryBudget {
  private readonly requests = new Array<number>(BUCKETS).fill(0);
  private readonly retries = new Array<number>(BUCKETS).fill(0);
  private slot = -1;

  constructor(
    readonly percent: number,
    readonly minRetriesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Counts one original request. */
  recordRequest(): void {
    this.requests[this.advance()]! += 1;
  }

  /** Withdraws one retry when the budget allows it. */
  tryWithdraw(): boolean {
    const current = this.advance();
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) { requests += this.requests[i]!; retries += this.retries[i]!; }
    const allowed = Math.max(this.minRetriesPerSecond, (this.percent / 100) * requests);
    if (retries + 1 > allowed) return false;
    this.retries[current]! += 1;
    return true;
  }

  /** Moves the window to now, zeroing buckets that fell out of it; returns the current bucket. */
  private advance(): number {
    const slot = Math.floor(this.now() / BUCKET_MS);
    if (this.slot < 0 || slot - this.slot >= BUCKETS) {
      this.requests.fill(0);
      this.retries.fill(0);
    } else {
      for (let s = this.slot + 1; s <= slot; s++) {
        this.requests[s % BUCKETS] = 0;
        this.retries[s % BUCKETS] = 0;
      }
    }
    if (slot > this.slot) this.slot = slot;
    return this.slot % BUCKETS;
  }
}

const budgets = new WeakMap<Snapshot, Map<string, RetryBudget>>();

/** The retry budget of a destination service in this config version (built on first use). */
export function retryBudgetFor(snapshot: Snapshot, service: string): RetryBudget {
  let perService = budgets.get(snapshot);
  if (!perService) budgets.set(snapshot, perService = new Map());
  let budget = perService.get(service);
  if (!budget) {
    const spec = snapshot.clusters[service]?.trafficPolicy?.retryBudget ?? DEFAULT_RETRY_BUDGET;
    budget = new RetryBudget(spec.percent, spec.minRetriesPerSecond);
    perService.set(service, budget);
  }
  return budget;
}
