/**
 * `trellis stat [SERVICE] [--routes] [--edges] [--window 1m] [-o table|yaml|json]`: golden metrics
 * (request rate, success rate, p50/p95/p99) per service, per route or per edge, from the control
 * plane's GET /api/v1/stats (aggregates the proxies send on their config stream; no Prometheus).
 *
 * `trellis top [--window 10s] [--interval 2s] [--once]`: the busiest (service, route) rows, refreshed
 * in place; --once prints them once and exits.
 */
import { parseDuration } from '../../api/duration.js';
import type { StatsResponse, StatsRowView } from '../../sdk/client.js';
import { renderTable, toJson, toYaml, type OutputFormat } from '../output.js';
import { clientFor, handleApiError, type ClientCliOptions } from './resources.js';

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const ms = (x: number) => `${x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0)}ms`;
const rps = (x: number) => `${x < 10 ? x.toFixed(2) : x.toFixed(1)}`;

export function formatStats(res: StatsResponse, format: OutputFormat): string {
  if (format === 'json') return toJson(res);
  if (format === 'yaml') return toYaml(res);
  if (res.rows.length === 0) {
    return `No requests in the last ${res.window}${res.service ? ` for ${res.service}` : ''}.\n`;
  }
  const first: string[] = res.by === 'edge' ? ['SOURCE', 'DESTINATION'] : res.by === 'route' ? ['SERVICE', 'ROUTE'] : ['SERVICE'];
  const head = (r: StatsRowView) => (res.by === 'edge' ? [r.source ?? '-', r.service] : res.by === 'route' ? [r.service, r.route ?? '-'] : [r.service]);
  const text = renderTable([...first, 'REQUESTS', 'RPS', 'SUCCESS', 'P50', 'P95', 'P99'],
    res.rows.map((r) => [...head(r), String(r.requests), rps(r.rps), pct(r.successRate), ms(r.latencyMs.p50), ms(r.latencyMs.p95), ms(r.latencyMs.p99)]));
  return text + (res.dropped > 0 ? `(${res.dropped} requests not counted: a proxy had more than 1000 distinct rows in an interval)\n` : '');
}

/** The busiest route rows first, at most `limit`. */
export function formatTop(res: StatsResponse, limit: number): string {
  const rows = [...res.rows].sort((a, b) => b.rps - a.rps || b.requests - a.requests).slice(0, limit);
  const header = `trellis top: busiest routes over the last ${res.window} (at ${res.at})\n\n`;
  if (rows.length === 0) return header + 'No requests.\n';
  return header + renderTable(['SERVICE', 'ROUTE', 'RPS', 'REQUESTS', 'SUCCESS', 'P50', 'P95', 'P99'],
    rows.map((r) => [r.service, r.route ?? '-', rps(r.rps), String(r.requests), pct(r.successRate), ms(r.latencyMs.p50), ms(r.latencyMs.p95), ms(r.latencyMs.p99)]));
}

function checkWindow(window: string): void {
  const w = parseDuration(window);
  if (w < 1000 || w > 15 * 60_000) throw new Error(`--window must be between 1s and 15m (got ${window})`);
}

export async function runStat(service: string | undefined, opts: ClientCliOptions & { routes?: boolean; edges?: boolean; window: string; output: OutputFormat }): Promise<void> {
  try {
    if (opts.routes && opts.edges) throw new Error('use either --routes or --edges');
    checkWindow(opts.window);
    const res = await clientFor(opts).stats({
      window: opts.window, by: opts.routes ? 'route' : opts.edges ? 'edge' : 'service', ...(service ? { service } : {}),
    });
    process.stdout.write(formatStats(res, opts.output));
  } catch (err) {
    handleApiError(err);
  }
}

export async function runTop(opts: ClientCliOptions & { window: string; interval: string; limit: string; once?: boolean }): Promise<void> {
  try {
    checkWindow(opts.window);
    const intervalMs = parseDuration(opts.interval);
    if (intervalMs < 100) throw new Error('--interval must be at least 100ms');
    const limit = Number(opts.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new Error('--limit must be a positive integer');
    const client = clientFor(opts);
    const render = async () => formatTop(await client.stats({ window: opts.window, by: 'route' }), limit);
    if (opts.once) {
      process.stdout.write(await render());
      return;
    }
    const tty = process.stdout.isTTY === true;
    for (;;) {
      const text = await render();
      // On a terminal: home the cursor, clear the screen, redraw. Otherwise one block per refresh.
      process.stdout.write(tty ? `\x1b[H\x1b[2J${text}` : `${text}\n`);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  } catch (err) {
    handleApiError(err);
  }
}
