/**
 * Canary stats shared by the control planes of one store (core/subset-metrics.ts; core/rollouts.ts).
 *
 * A control plane sees only the `stats` of the proxies streaming from it, but the leader's analysis must see
 * every canary request. So each control plane publishes, at most once per `publish()` (main.ts calls it every
 * stats interval) and only when its proxies reported something for a service with a Rollout, what they
 * reported since the last publish: one summed report per instance (counts and latency histogram buckets,
 * which merge by summing). It is this session's value in section ROLLOUT_STATS_SECTION (Store.putSessionValue:
 * on its lease, so a dead control plane's value vanishes), overwritten by each publish. Every control plane
 * adds the others' publishes to its SubsetMetrics (a leader elected later already has them).
 *
 * The value keeps the last SHARED_BATCHES_KEPT publishes, each numbered, so a reader that sees only the later
 * of two quick puts still adds both, and none twice.
 * Bounded: at most MAX_SHARED_REPORTS instances per publish (the rest are counted in `dropped`).
 */
import type { Store, StoreChange } from './ports.js';
import type { SharedReport, SubsetMetrics } from './subset-metrics.js';

export const ROLLOUT_STATS_SECTION = 'rollout-stats';
export const MAX_SHARED_REPORTS = 1000;
/** Publishes kept in the value: a reader that sees only the later of two quick puts still gets both. */
export const SHARED_BATCHES_KEPT = 2;

interface Batch { seq: number; reports: SharedReport[] }
interface Published { batches: Batch[] }

export interface SharedSubsetStatsDeps {
  store: Store;
  metrics: Pick<SubsetMetrics, 'takeShared' | 'ingestShared'>;
  /** Instances left out of a publish by MAX_SHARED_REPORTS (a metric). */
  onDropped?: (n: number) => void;
  log?: { warn(msg: string, fields?: Record<string, unknown>): void };
}

export class SharedSubsetStats {
  private seq = 0;
  private batches: Batch[] = [];
  /** The last publish read per session (a put seen twice, or out of order, is not counted twice). */
  private readonly lastSeq = new Map<string, number>();
  private chain: Promise<void> = Promise.resolve();
  /** Instances left out of a publish by MAX_SHARED_REPORTS. */
  dropped = 0;
  published = 0;

  constructor(private readonly deps: SharedSubsetStatsDeps) {}

  /** Publishes what this control plane's proxies reported since the last call; nothing when there is nothing. */
  async publish(): Promise<void> {
    let reports = this.deps.metrics.takeShared();
    if (reports.length === 0) return;
    if (reports.length > MAX_SHARED_REPORTS) {
      this.dropped += reports.length - MAX_SHARED_REPORTS;
      this.deps.onDropped?.(reports.length - MAX_SHARED_REPORTS);
      reports = reports.slice(0, MAX_SHARED_REPORTS);
    }
    this.batches.push({ seq: ++this.seq, reports });
    if (this.batches.length > SHARED_BATCHES_KEPT) this.batches.splice(0, this.batches.length - SHARED_BATCHES_KEPT);
    const value: Published = { batches: this.batches };
    await this.deps.store.putSessionValue(ROLLOUT_STATS_SECTION, JSON.stringify(value));
    this.published++;
  }

  /** Every store change goes here (main.ts): another control plane's publish is read and added. */
  onChange(change: StoreChange): void {
    if (change.type !== 'session-value' || change.section !== ROLLOUT_STATS_SECTION) return;
    if (change.op === 'delete') { this.lastSeq.delete(change.session); return; }
    if (change.session === this.deps.store.sessionId) return;
    const session = change.session;
    this.chain = this.chain.then(() => this.read(session)).catch((err: unknown) => {
      this.deps.log?.warn('could not read the canary stats of another control plane', { session, error: (err as Error).message });
    });
  }

  /** Resolves when every read queued so far is done (tests). */
  idle(): Promise<void> {
    return this.chain;
  }

  private async read(session: string): Promise<void> {
    const text = await this.deps.store.getSessionValue(ROLLOUT_STATS_SECTION, session);
    if (!text) return;
    let value: Published;
    try { value = JSON.parse(text) as Published; } catch { return; }
    if (!Array.isArray(value?.batches)) return;
    for (const batch of value.batches.slice(-SHARED_BATCHES_KEPT)) {
      if (typeof batch?.seq !== 'number' || !Array.isArray(batch.reports)) continue;
      if (batch.seq <= (this.lastSeq.get(session) ?? 0)) continue;
      this.lastSeq.set(session, batch.seq);
      this.deps.metrics.ingestShared(session, batch.reports.slice(0, MAX_SHARED_REPORTS));
    }
  }
}
