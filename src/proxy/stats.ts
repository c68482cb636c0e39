/**
 * Golden-metrics aggregates sent to the control plane (no Prometheus needed): per interval, one row
 * per (direction, source, destination, route) with the request count, the success count and a
 * latency histogram on LATENCY_BUCKETS_MS. `record` is on the request path (called from
 * ProxyMetrics.observeRequest): a Map lookup and a few increments. `flush` returns the interval's
 * `stats` message (src/api/schema/xds.ts) and starts a new interval. At most MAX_STATS_ROWS keys per
 * interval; requests of further keys are counted in `dropped`. Authorization denials ride along
 * (`recordDenial`, off the success path): at most MAX_DENIALS_PER_STATS per interval, the rest only counted
 * (`denialsDropped`, and trellis_authz_denials_unreported_total).
 */
import { LATENCY_BUCKETS_MS } from '../api/latency-buckets.js';
import { MAX_STATS_ROWS, type StatsMessage, type StatsRow } from '../api/schema/xds.js';
import { MAX_DENIALS_PER_STATS, type DenialEvent } from '../api/schema/tap.js';

export const DEFAULT_STATS_INTERVAL_MS = 5000;

/** TRELLIS_STATS_INTERVAL_MS (tests shorten it), else 5s; at least 100ms. */
export function statsIntervalFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TRELLIS_STATS_INTERVAL_MS;
  const n = raw === undefined || raw === '' ? NaN : Number(raw);
  return Number.isFinite(n) && n > 0 ? Math.max(100, Math.round(n)) : DEFAULT_STATS_INTERVAL_MS;
}

/** Index of the histogram bucket for `ms` (the last index is the overflow bucket). */
export function latencyBucketIndex(ms: number): number {
  const b = LATENCY_BUCKETS_MS;
  let lo = 0;
  let hi = b.length; // b.length = overflow
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ms <= b[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export class StatsAggregator {
  private rows = new Map<string, StatsRow>();
  private dropped = 0;
  private start: number;
  private denials: DenialEvent[] = [];
  private denialsDropped = 0;
  /** This proxy's instance id, stamped on denials. */
  instance = '';
  onDenialDropped?: () => void;

  constructor(private readonly now: () => number = Date.now, private readonly maxRows = MAX_STATS_ROWS) {
    this.start = now();
  }

  record(direction: 'inbound' | 'outbound', source: string, destination: string, route: string, success: boolean, ms: number): void {
    const key = `${direction}\u0000${source}\u0000${destination}\u0000${route}`;
    let row = this.rows.get(key);
    if (!row) {
      if (this.rows.size >= this.maxRows) { this.dropped++; return; }
      row = { direction, source, destination, route, requests: 0, successes: 0, latency: new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0) };
      this.rows.set(key, row);
    }
    row.requests++;
    if (success) row.successes++;
    row.latency[latencyBucketIndex(ms)]!++;
  }

  /** One authorization (or authentication) denial of this interval. */
  recordDenial(denial: Omit<DenialEvent, 'instance' | 'at'>): void {
    if (this.denials.length >= MAX_DENIALS_PER_STATS) { this.denialsDropped++; this.onDenialDropped?.(); return; }
    this.denials.push({ at: new Date(this.now()).toISOString(), instance: this.instance, ...denial });
  }

  /** The interval's message (undefined when nothing happened), and a new interval. */
  flush(): StatsMessage | undefined {
    const end = this.now();
    const start = this.start;
    this.start = end;
    if (this.rows.size === 0 && this.dropped === 0 && this.denials.length === 0 && this.denialsDropped === 0) return undefined;
    const msg: StatsMessage = {
      type: 'stats', window: { start, end }, rows: [...this.rows.values()], ...(this.dropped ? { dropped: this.dropped } : {}),
      ...(this.denials.length ? { denials: this.denials } : {}), ...(this.denialsDropped ? { denialsDropped: this.denialsDropped } : {}),
    };
    this.rows = new Map();
    this.dropped = 0;
    this.denials = [];
    this.denialsDropped = 0;
    return msg;
  }
}
