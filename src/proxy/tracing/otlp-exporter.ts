/**
 * A bounded, batching OTLP/HTTP JSON span exporter (POST {endpoint}/v1/traces).
 *
 * - add() is O(1) and never blocks: a span goes into a queue of at most maxQueueSize; when the queue
 *   is full the span is dropped and counted (trellis_spans_dropped_total{reason="queue_full"}).
 * - The queue is flushed every flushIntervalMs (timer armed only while spans wait) or as soon as a
 *   whole batch (maxBatchSize) is waiting. One export is in flight at a time, each bounded by
 *   exportTimeoutMs; a failed or timed-out batch is dropped and counted (reason="export_failed").
 * - Encoding to JSON happens at flush time, off the request path.
 * - shutdown() flushes what is queued (bounded by a timeout) and refuses further spans.
 * - Exports go over one keep-alive connection of the proxy's HTTP/1.1 client (undici-pool.ts), not the
 *   global fetch, whose bundled copy of undici would add ~40 MiB to a tracing proxy.
 */
import type { Logger } from '../../shared/log.js';
import { createPool, requestStatus, type Pool } from '../upstream/undici-pool.js';

export type AttributeValue = string | number | boolean;

export const SPAN_KIND_SERVER = 2;
export const SPAN_KIND_CLIENT = 3;

export interface FinishedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: typeof SPAN_KIND_SERVER | typeof SPAN_KIND_CLIENT;
  /** Epoch milliseconds (fractional). */
  startMs: number;
  endMs: number;
  attributes: Record<string, AttributeValue | undefined>;
  error: boolean;
}

export interface ExporterOptions {
  maxQueueSize: number;
  maxBatchSize: number;
  flushIntervalMs: number;
  exportTimeoutMs: number;
}

export const DEFAULT_EXPORTER_OPTIONS: ExporterOptions = { maxQueueSize: 2048, maxBatchSize: 512, flushIntervalMs: 1000, exportTimeoutMs: 5000 };

export interface ExporterHooks {
  resource: Record<string, string>;
  onDropped(reason: 'queue_full' | 'export_failed' | 'shutdown', count: number): void;
  log: Logger;
}

export class OtlpHttpExporter {
  private queue: FinishedSpan[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private failing = false;
  private pool: Pool | undefined;
  readonly url: string;
  private readonly target: URL;

  constructor(endpoint: string, private readonly hooks: ExporterHooks, private readonly opts: ExporterOptions = DEFAULT_EXPORTER_OPTIONS) {
    this.url = `${endpoint.replace(/\/+$/, '')}/v1/traces`;
    this.target = new URL(this.url);
  }

  get queued(): number { return this.queue.length; }

  add(span: FinishedSpan): void {
    if (this.closed) { this.hooks.onDropped('shutdown', 1); return; }
    if (this.queue.length >= this.opts.maxQueueSize) { this.hooks.onDropped('queue_full', 1); return; }
    this.queue.push(span);
    if (this.queue.length >= this.opts.maxBatchSize) { if (!this.flushing) void this.flush(); }
    else this.arm();
  }

  /** Exports everything queued now (one batch at a time). Never rejects. */
  flush(): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    this.flushing ??= (async () => {
      try {
        while (this.queue.length > 0) await this.send(this.queue.splice(0, this.opts.maxBatchSize));
      } finally {
        this.flushing = undefined;
      }
    })();
    return this.flushing;
  }

  /** Flushes what is queued (at most timeoutMs) and accepts no more spans. */
  async shutdown(timeoutMs = this.opts.exportTimeoutMs): Promise<void> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.flush(), new Promise<void>((r) => { timer = setTimeout(r, timeoutMs); timer.unref(); })]);
    clearTimeout(timer);
    if (this.timer) clearTimeout(this.timer);
    this.pool?.destroy().catch(() => {});
    this.pool = undefined;
  }

  private arm(): void {
    if (this.timer || this.flushing) return;
    this.timer = setTimeout(() => { this.timer = undefined; void this.flush(); }, this.opts.flushIntervalMs);
    this.timer.unref();
  }

  private async send(batch: FinishedSpan[]): Promise<void> {
    try {
      const timeoutMs = this.opts.exportTimeoutMs;
      // One export at a time (flush), so one connection; http or https from the endpoint URL.
      this.pool ??= createPool(this.target.origin, { connections: 1, connect: { timeout: timeoutMs } });
      const status = await requestStatus(this.pool, {
        method: 'POST', path: `${this.target.pathname}${this.target.search}`,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(encodeOtlpJson(batch, this.hooks.resource)),
      }, timeoutMs);
      if (status < 200 || status > 299) throw new Error(`OTLP endpoint answered ${status}`);
      if (this.failing) { this.failing = false; this.hooks.log.info('span export recovered', { url: this.url }); }
    } catch (err) {
      this.hooks.onDropped('export_failed', batch.length);
      if (!this.failing) { // one line per outage, not one per batch
        this.failing = true;
        this.hooks.log.warn('span export failed; dropping the batch', { url: this.url, spans: batch.length, error: (err as Error).message });
      }
    }
  }
}

function unixNano(ms: number): string {
  const whole = Math.floor(ms);
  return (BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6))).toString();
}

function anyValue(v: AttributeValue): Record<string, unknown> {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
}

function keyValues(attrs: Record<string, AttributeValue | undefined>): Array<{ key: string; value: Record<string, unknown> }> {
  const out: Array<{ key: string; value: Record<string, unknown> }> = [];
  for (const [key, v] of Object.entries(attrs)) if (v !== undefined) out.push({ key, value: anyValue(v) });
  return out;
}

/** OTLP/JSON ExportTraceServiceRequest (ids in hex, times as decimal strings, enums as numbers). */
export function encodeOtlpJson(spans: FinishedSpan[], resource: Record<string, string>): unknown {
  return {
    resourceSpans: [{
      resource: { attributes: keyValues(resource) },
      scopeSpans: [{
        scope: { name: 'trellis-proxy' },
        spans: spans.map((s) => ({
          traceId: s.traceId,
          spanId: s.spanId,
          ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
          ...(s.traceState ? { traceState: s.traceState } : {}),
          name: s.name,
          kind: s.kind,
          startTimeUnixNano: unixNano(s.startMs),
          endTimeUnixNano: unixNano(s.endMs),
          attributes: keyValues(s.attributes),
          status: s.error ? { code: 2 } : {},
        })),
      }],
    }],
  };
}

/**
 * The proxy's exporters, one per OTLP endpoint, shared by every config version (a new version with
 * the same endpoint keeps the queue). At most a few endpoints are kept; older ones are flushed and closed.
 */
export class TraceExporters {
  private readonly byEndpoint = new Map<string, OtlpHttpExporter>();
  constructor(private readonly hooks: ExporterHooks, private readonly opts: ExporterOptions = DEFAULT_EXPORTER_OPTIONS, private readonly maxEndpoints = 4) {}

  get(endpoint: string): OtlpHttpExporter {
    let exporter = this.byEndpoint.get(endpoint);
    if (exporter) return exporter;
    if (this.byEndpoint.size >= this.maxEndpoints) {
      const [oldest, old] = this.byEndpoint.entries().next().value as [string, OtlpHttpExporter];
      this.byEndpoint.delete(oldest);
      void old.shutdown();
    }
    exporter = new OtlpHttpExporter(endpoint, this.hooks, this.opts);
    this.byEndpoint.set(endpoint, exporter);
    return exporter;
  }

  async shutdown(timeoutMs?: number): Promise<void> {
    await Promise.all([...this.byEndpoint.values()].map((e) => e.shutdown(timeoutMs)));
  }
}
