/**
 * Golden metrics without Prometheus: the proxies send per-interval aggregates on their config stream
 * (`stats` messages, src/api/schema/xds.ts; built by src/proxy/stats.ts) and this module keeps, per
 * (direction, source, destination, route), a ring buffer of time slots covering the retention
 * (15 minutes by default). Queries sum the slots inside a window and derive request rate, success rate
 * and p50/p95/p99 (interpolated inside the histogram bucket, like PromQL's histogram_quantile).
 *
 * Pure: time is passed in (`at`, `now`), nothing is scheduled, nothing is imported from Node.
 * Bounded: at most `maxKeys` series (rows for new keys beyond it are dropped and counted), each a
 * fixed array of retention/slotMs slots allocated lazily.
 */
import { LATENCY_BUCKETS_MS } from '../../api/latency-buckets.js';
import type { StatsRow } from '../../api/schema/xds.js';

export type StatsBy = 'service' | 'route' | 'edge';
export const STATS_BY: readonly StatsBy[] = ['service', 'route', 'edge'];

export interface GoldenMetricsOptions {
  /** How far back data is kept (default 15 minutes). */
  retentionMs?: number;
  /** Time resolution of the ring buffer (default 1s). */
  slotMs?: number;
  /** Most series kept (default 5000). */
  maxKeys?: number;
  /** Histogram upper bounds in ms (default LATENCY_BUCKETS_MS); counts have one more (overflow) element. */
  buckets?: readonly number[];
}

export interface GoldenRow {
  /** The destination service. */
  service: string;
  /** The calling service (by=edge). */
  source?: string;
  /** The route (by=route): `HTTPRoute name/rule`, or `default`. */
  route?: string;
  /** Which proxies' view the row is computed from. */
  direction: 'inbound' | 'outbound';
  requests: number;
  successes: number;
  /** Requests per second over the window (or over the time stats have been received, when shorter). */
  rps: number;
  /** successes / requests. */
  successRate: number;
  latencyMs: { p50: number; p95: number; p99: number };
}

export interface GoldenQuery {
  by: StatsBy;
  windowMs: number;
  /** Only rows about this service (destination; for edges, source or destination). */
  service?: string;
  now: number;
}

export interface GoldenResult {
  rows: GoldenRow[];
  /** Requests the proxies could not report (over their per-interval row bound) or this module could not keep, in the window. */
  dropped: number;
  /** The span the rates are computed over, in ms. */
  coveredMs: number;
}

interface Slot { idx: number; requests: number; successes: number; latency: number[] }

interface Series {
  direction: 'inbound' | 'outbound';
  source: string;
  destination: string;
  route: string;
  slots: (Slot | undefined)[];
  lastIdx: number;
}

interface Agg { requests: number; successes: number; latency: number[] }

/**
 * The q-quantile (0..1) of a histogram: `counts[i]` observations ≤ bounds[i] (and above bounds[i-1]),
 * `counts[bounds.length]` above the last bound. Linear interpolation inside the bucket (the first
 * bucket starts at 0); a quantile in the overflow bucket is the last bound. 0 for an empty histogram.
 */
export function histogramQuantile(q: number, counts: readonly number[], bounds: readonly number[] = LATENCY_BUCKETS_MS): number {
  let total = 0;
  for (const c of counts) total += c;
  if (total <= 0) return 0;
  const rank = Math.min(1, Math.max(0, q)) * total;
  let cumulative = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (c > 0 && cumulative + c >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1] ?? 0;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      const upper = bounds[i]!;
      return lower + (upper - lower) * ((rank - cumulative) / c);
    }
    cumulative += c;
  }
  return bounds[bounds.length - 1] ?? 0;
}

/**
 * Part `k` (0 = oldest) of `total` split over `parts` slots in whole units: ⌊total/parts⌋ each, the
 * remainder one by one to the most recent slots. The same rule for requests, successes and every
 * latency bucket keeps each slot's successes ≤ its requests.
 */
function share(total: number, parts: number, k: number): number {
  const base = Math.floor(total / parts);
  return base + (k >= parts - (total - base * parts) ? 1 : 0);
}

export class GoldenMetrics {
  readonly retentionMs: number;
  readonly slotMs: number;
  private readonly capacity: number;
  private readonly maxKeys: number;
  private readonly buckets: readonly number[];
  private readonly series = new Map<string, Series>();
  /** Dropped requests per slot (same ring layout as a series). */
  private readonly dropped: ({ idx: number; count: number } | undefined)[];
  /** Earliest time covered by any stats message received. */
  private since: number | undefined;
  private lastPruneIdx = -Infinity;

  constructor(opts: GoldenMetricsOptions = {}) {
    this.retentionMs = opts.retentionMs ?? 15 * 60_000;
    this.slotMs = opts.slotMs ?? 1000;
    this.capacity = Math.max(1, Math.ceil(this.retentionMs / this.slotMs));
    this.maxKeys = opts.maxKeys ?? 5000;
    this.buckets = opts.buckets ?? LATENCY_BUCKETS_MS;
    this.dropped = new Array(this.capacity);
  }

  /** Number of series kept. */
  get size(): number { return this.series.size; }

  /**
   * Adds one stats message from a proxy of service `reporter`, received at `at` (ms) covering
   * `intervalMs` before it. Rows a proxy may not report (inbound rows not to its own service,
   * outbound rows not from it) are ignored. Returns the number of rows kept.
   *
   * A report's counts are spread evenly (in whole requests) over the slots its interval covers, not
   * put in the slot it arrived in: the caller's and the callee's proxies report on their own timers,
   * and a late or long report (a busy proxy, a reconnect) would otherwise land all at once in a short
   * window, so the two views of one edge disagreed (seen as catalog's inbound ≈1.4× the web→catalog
   * edge over a 30 s window on an overloaded machine).
   */
  ingest(reporter: string, rows: readonly StatsRow[], at: number, intervalMs = 0, droppedRequests = 0): number {
    const idx = Math.floor(at / this.slotMs);
    const start = at - Math.max(0, intervalMs);
    if (this.since === undefined || start < this.since) this.since = start;
    this.prune(idx);
    // The slots (idx - spread, idx] the report covers, at least its arrival slot, at most the retention.
    const spread = Math.min(this.capacity, Math.max(1, Math.round(Math.max(0, intervalMs) / this.slotMs)));
    let kept = 0;
    let dropped = droppedRequests;
    const width = this.buckets.length + 1;
    for (const row of rows) {
      if (row.direction === 'inbound' ? row.destination !== reporter : row.source !== reporter) continue;
      if (row.requests <= 0) continue;
      const key = `${row.direction}\u0000${row.source}\u0000${row.destination}\u0000${row.route}`;
      let s = this.series.get(key);
      if (!s) {
        if (this.series.size >= this.maxKeys) { dropped += row.requests; continue; }
        s = { direction: row.direction, source: row.source, destination: row.destination, route: row.route, slots: new Array(this.capacity), lastIdx: idx };
        this.series.set(key, s);
      }
      const successes = Math.min(row.successes, row.requests);
      for (let k = 0; k < spread; k++) {
        const slotIdx = idx - spread + 1 + k;
        const pos = ((slotIdx % this.capacity) + this.capacity) % this.capacity;
        let slot = s.slots[pos];
        if (!slot || slot.idx !== slotIdx) {
          // An older slot still in the ring position is overwritten only by a newer one.
          if (slot && slot.idx > slotIdx) continue;
          slot = { idx: slotIdx, requests: 0, successes: 0, latency: new Array<number>(width).fill(0) };
          s.slots[pos] = slot;
        }
        slot.requests += share(row.requests, spread, k);
        slot.successes += share(successes, spread, k);
        for (let i = 0; i < width && i < row.latency.length; i++) slot.latency[i]! += share(row.latency[i]!, spread, k);
      }
      if (idx > s.lastIdx) s.lastIdx = idx;
      kept++;
    }
    if (dropped > 0) {
      const pos = idx % this.capacity;
      const d = this.dropped[pos];
      if (d && d.idx === idx) d.count += dropped;
      else this.dropped[pos] = { idx, count: dropped };
    }
    return kept;
  }

  /** Forgets series with no data inside the retention (at most once per retention/10). */
  private prune(idx: number): void {
    if (idx - this.lastPruneIdx < Math.max(1, this.capacity / 10)) return;
    this.lastPruneIdx = idx;
    for (const [key, s] of this.series) if (s.lastIdx <= idx - this.capacity) this.series.delete(key);
  }

  query(q: GoldenQuery): GoldenResult {
    const nowIdx = Math.floor(q.now / this.slotMs);
    const windowMs = Math.min(Math.max(q.windowMs, this.slotMs), this.retentionMs);
    const n = Math.min(this.capacity, Math.max(1, Math.ceil(windowMs / this.slotMs)));
    const fromIdx = nowIdx - n + 1;
    const inWindow = (idx: number) => idx >= fromIdx && idx <= nowIdx;
    const width = this.buckets.length + 1;

    const sum = (s: Series): Agg | undefined => {
      if (s.lastIdx < fromIdx) return undefined;
      let agg: Agg | undefined;
      for (let idx = fromIdx; idx <= nowIdx; idx++) {
        const slot = s.slots[((idx % this.capacity) + this.capacity) % this.capacity];
        if (!slot || slot.idx !== idx) continue;
        agg ??= { requests: 0, successes: 0, latency: new Array<number>(width).fill(0) };
        agg.requests += slot.requests;
        agg.successes += slot.successes;
        for (let i = 0; i < width; i++) agg.latency[i]! += slot.latency[i]!;
      }
      return agg;
    };
    const add = (into: Agg, a: Agg) => {
      into.requests += a.requests;
      into.successes += a.successes;
      for (let i = 0; i < width; i++) into.latency[i]! += a.latency[i]!;
    };

    // group key -> per-direction sums
    const groups = new Map<string, { service: string; source?: string; route?: string; inbound?: Agg; outbound?: Agg }>();
    for (const s of this.series.values()) {
      if (q.by === 'route' && s.direction !== 'outbound') continue;
      if (q.service !== undefined) {
        const about = q.by === 'edge' ? (s.destination === q.service || s.source === q.service) : s.destination === q.service;
        if (!about) continue;
      }
      const agg = sum(s);
      if (!agg) continue;
      const key = q.by === 'service' ? s.destination
        : q.by === 'route' ? `${s.destination}\u0000${s.route}`
          : `${s.source}\u0000${s.destination}`;
      let g = groups.get(key);
      if (!g) {
        g = { service: s.destination, ...(q.by === 'route' ? { route: s.route } : {}), ...(q.by === 'edge' ? { source: s.source } : {}) };
        groups.set(key, g);
      }
      const into = (g[s.direction] ??= { requests: 0, successes: 0, latency: new Array<number>(width).fill(0) });
      add(into, agg);
    }

    const coveredMs = this.since === undefined ? windowMs : Math.max(this.slotMs, Math.min(windowMs, q.now - this.since));
    const rows: GoldenRow[] = [];
    for (const g of groups.values()) {
      // Services: the destination's own (inbound) view first; routes: outbound only; edges: the caller's view first.
      const order: ('inbound' | 'outbound')[] = q.by === 'service' ? ['inbound', 'outbound'] : ['outbound', 'inbound'];
      const direction = order.find((d) => (g[d]?.requests ?? 0) > 0);
      if (!direction) continue;
      const a = g[direction]!;
      rows.push({
        service: g.service,
        ...(g.source !== undefined ? { source: g.source } : {}),
        ...(g.route !== undefined ? { route: g.route } : {}),
        direction,
        requests: a.requests,
        successes: a.successes,
        rps: round(a.requests / (coveredMs / 1000), 3),
        successRate: round(a.successes / a.requests, 4),
        latencyMs: {
          p50: round(histogramQuantile(0.5, a.latency, this.buckets), 3),
          p95: round(histogramQuantile(0.95, a.latency, this.buckets), 3),
          p99: round(histogramQuantile(0.99, a.latency, this.buckets), 3),
        },
      });
    }
    rows.sort((x, y) => cmp(x.service, y.service) || cmp(x.source ?? '', y.source ?? '') || cmp(x.route ?? '', y.route ?? ''));

    let dropped = 0;
    for (let idx = fromIdx; idx <= nowIdx; idx++) {
      const d = this.dropped[((idx % this.capacity) + this.capacity) % this.capacity];
      if (d && d.idx === idx && inWindow(d.idx)) dropped += d.count;
    }
    return { rows, dropped, coveredMs };
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
