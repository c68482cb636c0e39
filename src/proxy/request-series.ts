/**
 * The per-request Prometheus series (trellis_requests_total, trellis_request_duration_ms,
 * trellis_request_bytes_total, trellis_response_bytes_total) kept as plain numbers.
 *
 * prom-client re-validates and re-hashes the label set on every inc()/observe(), even through a
 * cached `labels()` handle; with four series per request that was a measurable part of the proxy's
 * cost. Here a request costs one Map lookup on a string key and a few additions; the label objects
 * are built once per combination, and the text is produced by prom-client's own Registry at scrape
 * time (these objects implement the metric interface it reads: name, help, type, get()), so the
 * exposition is the same as with prom-client's Counter and Histogram.
 */
import type client from 'prom-client';

type Labels = Record<string, string>;

interface Series {
  readonly count: Labels; // direction, source, destination, route, code, classification
  readonly latency: Labels; // direction, source, destination, route, classification
  readonly bytes: Labels; // direction, source, destination, route
  requests: number;
  latencySum: number;
  /** Non-cumulative counts per bucket; the last one is above the highest bound. */
  readonly buckets: Float64Array;
  requestBytes: number;
  responseBytes: number;
}

/** Index of the first bound ≥ value (bounds.length when above all). */
function bucketOf(bounds: readonly number[], value: number): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (value <= bounds[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

interface MetricValue { labels: Labels; value: number; metricName?: string; sharedLabels?: Labels }
interface MetricData { name: string; help: string; type: string; values: MetricValue[]; aggregator: string }

/** The metric interface prom-client's Registry reads when it renders or merges metrics. */
class PulledMetric {
  readonly aggregator = 'sum';
  constructor(readonly name: string, readonly help: string, readonly type: 'counter' | 'histogram', private readonly values: () => MetricValue[]) {}
  async get(): Promise<MetricData> {
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator };
  }
  reset(): void { /* series live as long as the proxy */ }
}

export class RequestSeries {
  private readonly series = new Map<string, Series>();

  constructor(private readonly bounds: readonly number[]) {}

  record(direction: string, source: string, destination: string, route: string, status: number, ms: number, requestBytes: number, responseBytes: number): void {
    const key = `${direction}|${source}|${destination}|${route}|${status}`;
    let s = this.series.get(key);
    if (!s) {
      const classification = status >= 500 ? 'failure' : 'success';
      s = {
        count: { direction, source, destination, route, code: String(status), classification },
        latency: { direction, source, destination, route, classification },
        bytes: { direction, source, destination, route },
        requests: 0, latencySum: 0, buckets: new Float64Array(this.bounds.length + 1), requestBytes: 0, responseBytes: 0,
      };
      this.series.set(key, s);
    }
    s.requests++;
    s.latencySum += ms;
    s.buckets[bucketOf(this.bounds, ms)]!++;
    s.requestBytes += requestBytes;
    s.responseBytes += responseBytes;
  }

  /** Registers the four metric families on a prom-client registry. */
  register(registry: client.Registry, help: { requests: string; latency: string; requestBytes: string; responseBytes: string }): void {
    registry.registerMetric(new PulledMetric('trellis_requests_total', help.requests, 'counter', () => this.counts()) as unknown as client.Metric);
    registry.registerMetric(new PulledMetric('trellis_request_duration_ms', help.latency, 'histogram', () => this.histogram('trellis_request_duration_ms')) as unknown as client.Metric);
    registry.registerMetric(new PulledMetric('trellis_request_bytes_total', help.requestBytes, 'counter', () => this.bytes((s) => s.requestBytes)) as unknown as client.Metric);
    registry.registerMetric(new PulledMetric('trellis_response_bytes_total', help.responseBytes, 'counter', () => this.bytes((s) => s.responseBytes)) as unknown as client.Metric);
  }

  private counts(): MetricValue[] {
    const out: MetricValue[] = [];
    for (const s of this.series.values()) out.push({ labels: s.count, value: s.requests });
    return out;
  }

  /** Bytes per (direction, source, destination, route); a series appears once it counted a byte. */
  private bytes(of: (s: Series) => number): MetricValue[] {
    const sums = new Map<Labels, number>();
    const byKey = new Map<string, Labels>();
    for (const s of this.series.values()) {
      const v = of(s);
      if (v <= 0) continue;
      const k = `${s.bytes.direction}|${s.bytes.source}|${s.bytes.destination}|${s.bytes.route}`;
      let labels = byKey.get(k);
      if (!labels) byKey.set(k, labels = s.bytes);
      sums.set(labels, (sums.get(labels) ?? 0) + v);
    }
    return [...sums].map(([labels, value]) => ({ labels, value }));
  }

  /** Cumulative buckets, +Inf, _sum and _count per (direction, source, destination, route, classification). */
  private histogram(name: string): MetricValue[] {
    const groups = new Map<string, { labels: Labels; buckets: Float64Array; sum: number; count: number }>();
    for (const s of this.series.values()) {
      const l = s.latency;
      const k = `${l.direction}|${l.source}|${l.destination}|${l.route}|${l.classification}`;
      let g = groups.get(k);
      if (!g) groups.set(k, g = { labels: l, buckets: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 });
      for (let i = 0; i < s.buckets.length; i++) g.buckets[i]! += s.buckets[i]!;
      g.sum += s.latencySum;
      g.count += s.requests;
    }
    const out: MetricValue[] = [];
    for (const g of groups.values()) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += g.buckets[i]!;
        out.push({ labels: { le: this.bounds[i] as unknown as string }, sharedLabels: g.labels, value: acc, metricName: `${name}_bucket` });
      }
      out.push({ labels: { le: '+Inf' }, sharedLabels: g.labels, value: g.count, metricName: `${name}_bucket` });
      out.push({ labels: {}, sharedLabels: g.labels, value: g.sum, metricName: `${name}_sum` });
      out.push({ labels: {}, sharedLabels: g.labels, value: g.count, metricName: `${name}_count` });
    }
    return out;
  }
}
