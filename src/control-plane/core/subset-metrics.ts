/**
 * Golden metrics per label subset of a service, for canary analysis (core/rollouts.ts).
 *
 * GoldenMetrics (golden-metrics.ts) sums what proxies report per service, route and edge; it cannot tell a
 * canary's requests from the stable's. Here each proxy's inbound rows (requests to its own service, as its
 * own instance answered them) are kept per reporting instance, with that instance's labels from its hello:
 * the control plane knows which instance sent a `stats` message, so nothing is added on the wire. A query
 * sums the instances whose labels include a selector (`version=v2`) over a window.
 *
 * Control planes sharing a store each see only their own proxies' stats: each takes what its proxies reported
 * since the last time (takeShared, one summed report per instance) and publishes it for the leader's analysis,
 * which adds the others' (ingestShared) to its own (core/shared-subset-stats.ts).
 *
 * Only services with a Rollout are kept (`track`), so the cost follows the rollouts, not the mesh.
 * Pure: time is passed in, nothing is scheduled. Bounded: at most `maxInstances` instances and
 * `maxReportsPerInstance` reports each (oldest dropped), reports older than the retention dropped.
 */
import { LATENCY_BUCKETS_MS } from '../../api/latency-buckets.js';
import type { StatsRow } from '../../api/schema/xds.js';
import { histogramQuantile } from './golden-metrics.js';

export interface SubsetMetricsOptions {
  /** How long reports are kept (default 1h: the longest Rollout interval). */
  retentionMs?: number;
  /** Most reports kept per instance (default 4000: 1h of reports every second). */
  maxReportsPerInstance?: number;
  /** Most instances kept (default 5000); reports of further instances are dropped and counted. */
  maxInstances?: number;
  /** Called for each report dropped by the instance bound (a metric). */
  onDropped?: () => void;
}

export interface SubsetQuery {
  service: string;
  /** Instances whose labels include every one of these. */
  selector: Readonly<Record<string, string>>;
  windowMs: number;
  now: number;
}

export interface SubsetResult {
  /** Requests in the window (a report straddling the window's start counts pro rata, rounded). */
  requests: number;
  successes: number;
  /** successes / requests; undefined without requests. */
  successRate?: number;
  /** p99 latency in ms, interpolated in the histogram bucket; undefined without requests. */
  p99Ms?: number;
  /** Instances matching the selector that reported in the window. */
  instances: number;
}

interface Report { start: number; end: number; requests: number; successes: number; latency: number[] }

/** What one instance's proxy reported over [start, end] (ms), summed: the unit control planes share. */
export interface SharedReport extends Report {
  instance: string;
  service: string;
  labels: Record<string, string>;
}
interface InstanceSeries { service: string; labels: Record<string, string>; reports: Report[] }

export class SubsetMetrics {
  private readonly retentionMs: number;
  private readonly maxReports: number;
  private readonly maxInstances: number;
  private readonly onDropped?: () => void;
  private readonly width = LATENCY_BUCKETS_MS.length + 1;
  private readonly instances = new Map<string, InstanceSeries>();
  private tracked = new Set<string>();
  /** Local reports not yet taken by takeShared, summed per instance (bounded by maxInstances). */
  private outgoing = new Map<string, SharedReport>();
  /** Reports refused by the instance bound (for a metric or a test). */
  dropped = 0;

  constructor(opts: SubsetMetricsOptions = {}) {
    this.retentionMs = opts.retentionMs ?? 3_600_000;
    this.maxReports = opts.maxReportsPerInstance ?? 4000;
    this.maxInstances = opts.maxInstances ?? 5000;
    if (opts.onDropped) this.onDropped = opts.onDropped;
  }

  /** The services whose instances are kept from now on; the others' data is forgotten. */
  track(services: Iterable<string>): void {
    this.tracked = new Set(services);
    for (const [id, s] of this.instances) if (!this.tracked.has(s.service)) this.instances.delete(id);
    for (const [id, r] of this.outgoing) if (!this.tracked.has(r.service)) this.outgoing.delete(id);
  }

  /** The local reports since the last call, one per instance (its reports summed), and forgets them. */
  takeShared(): SharedReport[] {
    const out = [...this.outgoing.values()];
    this.outgoing = new Map();
    return out;
  }

  /**
   * Reports another control plane's proxies sent (its takeShared), kept under `origin/instance` so they never
   * mix with this control plane's. Malformed entries are skipped.
   */
  ingestShared(origin: string, reports: readonly SharedReport[]): void {
    for (const r of reports) {
      if (!r || typeof r.instance !== 'string' || typeof r.service !== 'string' || !this.tracked.has(r.service)) continue;
      if (![r.start, r.end, r.requests, r.successes].every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0) || r.end < r.start) continue;
      if (!Array.isArray(r.latency) || typeof r.labels !== 'object' || r.labels === null) continue;
      const latency = new Array<number>(this.width).fill(0);
      for (let i = 0; i < this.width; i++) {
        const v = r.latency[i];
        latency[i] = typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0;
      }
      const labels: Record<string, string> = {};
      for (const [k, v] of Object.entries(r.labels)) if (typeof v === 'string') labels[k] = v;
      this.add(`${origin}/${r.instance}`, r.service, labels, {
        start: r.start, end: r.end, requests: r.requests, successes: Math.min(r.successes, r.requests), latency,
      }, r.end);
    }
  }

  isTracked(service: string): boolean {
    return this.tracked.has(service);
  }

  /**
   * One stats message of instance `instanceId` of `service` (labels from its hello), received at `at` (ms)
   * and covering `intervalMs` before it. Only its inbound rows to its own service count.
   */
  ingest(instanceId: string, service: string, labels: Readonly<Record<string, string>>, rows: readonly StatsRow[], at: number, intervalMs: number): void {
    if (!this.tracked.has(service)) return;
    let report: Report | undefined;
    for (const row of rows) {
      if (row.direction !== 'inbound' || row.destination !== service || row.requests <= 0) continue;
      report ??= { start: at - Math.max(0, intervalMs), end: at, requests: 0, successes: 0, latency: new Array<number>(this.width).fill(0) };
      report.requests += row.requests;
      report.successes += Math.min(row.successes, row.requests);
      for (let i = 0; i < this.width && i < row.latency.length; i++) report.latency[i]! += row.latency[i]!;
    }
    if (!report) return;
    if (!this.add(instanceId, service, labels, report, at)) return;
    const o = this.outgoing.get(instanceId);
    if (!o || o.service !== service) {
      this.outgoing.set(instanceId, { instance: instanceId, service, labels: { ...labels }, ...report, latency: [...report.latency] });
    } else {
      o.labels = { ...labels };
      o.start = Math.min(o.start, report.start);
      o.end = Math.max(o.end, report.end);
      o.requests += report.requests;
      o.successes += report.successes;
      for (let i = 0; i < this.width; i++) o.latency[i]! += report.latency[i]!;
    }
  }

  /** Adds one report to an instance's series; false when the instance bound refused it. */
  private add(instanceId: string, service: string, labels: Readonly<Record<string, string>>, report: Report, at: number): boolean {
    let series = this.instances.get(instanceId);
    if (!series || series.service !== service) {
      if (!series && this.instances.size >= this.maxInstances) { this.dropped++; this.onDropped?.(); return false; }
      series = { service, labels: { ...labels }, reports: [] };
      this.instances.set(instanceId, series);
    }
    series.labels = { ...labels };
    series.reports.push(report);
    const oldest = at - this.retentionMs;
    let drop = Math.max(0, series.reports.length - this.maxReports);
    while (drop < series.reports.length && series.reports[drop]!.end < oldest) drop++;
    if (drop > 0) series.reports.splice(0, drop);
    return true;
  }

  query(q: SubsetQuery): SubsetResult {
    const from = q.now - Math.max(0, q.windowMs);
    let requests = 0;
    let successes = 0;
    let instances = 0;
    const latency = new Array<number>(this.width).fill(0);
    for (const s of this.instances.values()) {
      if (s.service !== q.service || !matches(s.labels, q.selector)) continue;
      let any = false;
      for (const r of s.reports) {
        if (r.end <= from || r.start > q.now) continue;
        const span = r.end - r.start;
        // The part of the report inside the window (reports are spread evenly over their interval).
        const f = span <= 0 ? 1 : (Math.min(r.end, q.now) - Math.max(r.start, from)) / span;
        if (f <= 0) continue;
        any = true;
        requests += r.requests * f;
        successes += r.successes * f;
        for (let i = 0; i < this.width; i++) latency[i]! += r.latency[i]! * f;
      }
      if (any) instances++;
    }
    const n = Math.round(requests);
    if (n <= 0) return { requests: 0, successes: 0, instances };
    return {
      requests: n,
      successes: Math.min(n, Math.round(successes)),
      successRate: Math.min(1, successes / requests),
      p99Ms: histogramQuantile(0.99, latency),
      instances,
    };
  }
}

export function matches(labels: Readonly<Record<string, string>>, selector: Readonly<Record<string, string>>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}
