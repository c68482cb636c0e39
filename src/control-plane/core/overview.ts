/**
 * The dashboard's view model: one Overview (contract.ts) of the whole mesh — services, golden metrics by service,
 * edge and route, routes with their weights, authorization policies and recent denials, proxies — built from the
 * core's read models. GET /api/v1/overview answers one; GET /api/v1/events streams one every ~2 s.
 *
 * Pure core: time is passed in, nothing is scheduled; the store, registry and metrics are reached through the core's
 * own classes. Building is cheap (in-memory reads and ring-buffer sums); concurrent callers asking for the same
 * window within `cacheMs` share one result.
 */
import type { Resource, ResourceOf } from '../../api/schema/resources.js';
import type { Overview, OverviewHistoryPoint, StatsRowView } from '../contract.js';
import type { DenialLog } from './denials.js';
import type { GoldenMetrics } from './golden-metrics.js';
import type { Store } from './ports.js';
import type { MeshQueries } from './queries.js';
import { byName } from '../../api/resource-order.js';

/** Most denials one overview carries (newest first). */
export const OVERVIEW_DENIALS = 50;
/** Shortest and longest stats window an overview accepts. */
export const OVERVIEW_MIN_WINDOW_MS = 5_000;
export const OVERVIEW_MAX_WINDOW_MS = 15 * 60_000;
export const DEFAULT_OVERVIEW_WINDOW = '30s';
/** History: how far back, and the step between points. */
export const DEFAULT_HISTORY_MS = 5 * 60_000;
export const HISTORY_STEP_MS = 10_000;

export interface OverviewDeps {
  store: Pick<Store, 'listResources'>;
  queries: Pick<MeshQueries, 'services' | 'proxyStates'>;
  stats?: Pick<GoldenMetrics, 'query'>;
  denials?: Pick<DenialLog, 'list'>;
  /** Reuse an overview of the same window and history this recent (ms; default 500). */
  cacheMs?: number;
}

export interface OverviewRequest {
  /** As asked for, e.g. "30s" (echoed back). */
  window: string;
  windowMs: number;
  now: number;
  /** Include per-service points over this many ms before `now` (0 or absent: none). */
  historyMs?: number;
}

export class OverviewService {
  private cache?: { key: string; at: number; value: Promise<Overview> };

  constructor(private readonly deps: OverviewDeps) {}

  build(req: OverviewRequest): Promise<Overview> {
    const key = `${req.window}\u0000${req.windowMs}\u0000${req.historyMs ?? 0}`;
    const cacheMs = this.deps.cacheMs ?? 500;
    const c = this.cache;
    if (c && c.key === key && req.now >= c.at && req.now - c.at < cacheMs) return c.value;
    const value = this.compute(req);
    this.cache = { key, at: req.now, value };
    value.catch(() => { if (this.cache?.value === value) this.cache = undefined; });
    return value;
  }

  private async compute(req: OverviewRequest): Promise<Overview> {
    const { store, queries, stats, denials } = this.deps;
    const [services, resources] = await Promise.all([queries.services(), store.listResources()]);
    const proxies = queries.proxyStates();
    const q = (by: 'service' | 'edge' | 'route') => stats?.query({ by, windowMs: req.windowMs, now: req.now }) ?? { rows: [], dropped: 0, coveredMs: req.windowMs };
    const byService = q('service');
    const byEdge = q('edge');
    const byRoute = q('route');
    const meshConfig = resources.find((r): r is ResourceOf<'MeshConfig'> => r.kind === 'MeshConfig');
    const recent = denials?.list() ?? [];
    const overview: Overview = {
      at: new Date(req.now).toISOString(),
      version: proxies.version,
      window: req.window,
      windowMs: req.windowMs,
      coveredMs: Math.round(byService.coveredMs),
      services,
      stats: { services: byService.rows, edges: byEdge.rows, routes: byRoute.rows, dropped: byService.dropped },
      routes: resources.filter((r) => r.kind === 'HTTPRoute' || r.kind === 'TCPRoute').sort(byKindAndName),
      authorization: {
        default: meshConfig?.spec.authorization.default ?? 'allow',
        policies: resources.filter((r) => r.kind === 'AuthorizationPolicy').sort(byKindAndName),
        denials: recent.slice(0, OVERVIEW_DENIALS),
        denialsKept: recent.length,
      },
      proxies: proxies.proxies,
    };
    if (req.historyMs && req.historyMs > 0 && stats) overview.history = serviceHistory(stats, req.windowMs, req.now, req.historyMs);
    return overview;
  }
}

/**
 * Per-service points every HISTORY_STEP_MS over the last `historyMs`, oldest first, each over `windowMs` ending at
 * its time (the same smoothing as the live overviews). Steps before any data are left out.
 */
export function serviceHistory(stats: Pick<GoldenMetrics, 'query'>, windowMs: number, now: number, historyMs: number): { stepMs: number; points: OverviewHistoryPoint[] } {
  const steps = Math.min(Math.floor(historyMs / HISTORY_STEP_MS), 200);
  const points: OverviewHistoryPoint[] = [];
  for (let i = steps; i >= 1; i--) {
    const at = now - i * HISTORY_STEP_MS;
    const rows = stats.query({ by: 'service', windowMs, now: at }).rows;
    if (rows.length === 0 && points.length === 0) continue;
    points.push({ at: new Date(at).toISOString(), services: rows.map(toPoint) });
  }
  return { stepMs: HISTORY_STEP_MS, points };
}

export function toPoint(row: StatsRowView): OverviewHistoryPoint['services'][number] {
  return { service: row.service, rps: row.rps, successRate: row.successRate, p50: row.latencyMs.p50, p99: row.latencyMs.p99 };
}

function byKindAndName(a: Resource, b: Resource): number {
  return a.kind === b.kind ? byName(a, b) : a.kind < b.kind ? -1 : 1;
}
