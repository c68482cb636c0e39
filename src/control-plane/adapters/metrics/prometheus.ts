/** The control plane's Prometheus metrics (own registry, served at GET /metrics). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MetricsSink } from '../../core/ports.js';
import type { TapMetrics } from '../../core/taps.js';
import { RolloutPhase, type RolloutStatus } from '../../../api/schema/rollout.js';

export class PrometheusMetrics implements MetricsSink, TapMetrics {
  readonly registry = new Registry();
  private readonly connected: Gauge;
  private readonly version: Gauge;
  private readonly push: Histogram;
  private readonly nacks: Counter<'service'>;
  private readonly issued: Counter;
  private readonly tapSessions: Gauge;
  private readonly tapDropped: Counter<'where'>;
  private readonly eventsDropped: Counter;
  private readonly rolloutDrops: Counter;
  private rollouts?: { list(): RolloutStatus[] };

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.connected = new Gauge({ name: 'trellis_cp_connected_proxies', help: 'Proxies with an open config stream', registers });
    this.version = new Gauge({ name: 'trellis_cp_config_version', help: 'Current config snapshot version', registers });
    this.push = new Histogram({
      name: 'trellis_cp_push_seconds',
      help: 'Time from a config change to a proxy ACK of the version carrying it',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.nacks = new Counter({ name: 'trellis_cp_nacks_total', help: 'Config versions rejected by proxies', labelNames: ['service'], registers });
    this.issued = new Counter({ name: 'trellis_cp_certificates_issued_total', help: 'Workload certificates issued', registers });
    this.tapSessions = new Gauge({ name: 'trellis_cp_tap_sessions', help: 'Live tap sessions (GET /api/v1/tap clients)', registers });
    this.tapDropped = new Counter({ name: 'trellis_cp_tap_events_dropped_total', help: 'Tap events lost: proxy (reported by proxies: rate, buffer, backpressure) or client (a slow SSE client)', labelNames: ['where'], registers });
    this.eventsDropped = new Counter({ name: 'trellis_cp_events_dropped_total', help: 'Dashboard overviews not sent on GET /api/v1/events because the client was behind (or the previous one was still being built)', registers });
    this.rolloutDrops = new Counter({ name: 'trellis_cp_rollout_stats_dropped_total', help: 'Canary-analysis stats reports not kept: the per-instance bound was reached (core/subset-metrics.ts), or the per-publish bound of the stats shared with other control planes (core/shared-subset-stats.ts)', registers });
    const rollouts = () => this.rollouts?.list() ?? [];
    new Gauge({
      name: 'trellis_cp_rollout_canary_weight', help: 'Percent of a Rollout\'s service traffic sent to the canary labels (0 while not split)', labelNames: ['rollout', 'service'], registers,
      collect() { this.reset(); for (const r of rollouts()) this.set({ rollout: r.name, service: r.service }, r.trafficSplit ? r.canaryWeight : 0); },
    });
    new Gauge({
      name: 'trellis_cp_rollout_phase', help: 'A Rollout\'s phase: 1 for the current one', labelNames: ['rollout', 'service', 'phase'], registers,
      collect() {
        this.reset();
        for (const r of rollouts()) for (const phase of RolloutPhase.options) this.set({ rollout: r.name, service: r.service, phase }, r.phase === phase ? 1 : 0);
      },
    });
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'trellis_cp_process_' });
  }

  setConnectedProxies(n: number): void { this.connected.set(n); }
  setConfigVersion(version: number): void { if (Number.isFinite(version)) this.version.set(version); }
  observePush(seconds: number): void { this.push.observe(seconds); }
  nack(service: string): void { this.nacks.inc({ service }); }
  certificateIssued(): void { this.issued.inc(); }
  setTapSessions(n: number): void { this.tapSessions.set(n); }
  tapEventsDropped(where: 'proxy' | 'client', n: number): void { this.tapDropped.inc({ where }, n); }

  eventDropped(): void { this.eventsDropped.inc(); }

  /** Rollout statuses read at scrape time (trellis_cp_rollout_canary_weight, trellis_cp_rollout_phase). */
  observeRollouts(source: { list(): RolloutStatus[] }): void { this.rollouts = source; }
  rolloutStatsDropped(n = 1): void { this.rolloutDrops.inc(n); }

  get contentType(): string { return this.registry.contentType; }
  text(): Promise<string> { return this.registry.metrics(); }
}
