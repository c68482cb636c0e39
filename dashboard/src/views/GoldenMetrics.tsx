/** Per-service golden metrics: request rate, success rate and latency now, with small charts over the last minutes. */
import type { Overview } from '../../../src/sdk/client.js';
import { Sparkline } from '../components/Sparkline.js';
import { count, healthClass, ms, pct, rps } from '../format.js';
import type { Series } from '../live.js';

export function GoldenMetrics({ overview, series, only }: { overview: Overview; series: Map<string, Series>; only?: string }) {
  const stats = new Map(overview.stats.services.map((r) => [r.service, r]));
  const names = overview.services.map((s) => s.name).filter((n) => !only || n === only);
  if (names.length === 0) return <p class="empty">No services.</p>;
  return (
    <div class="cards">
      {names.map((name) => {
        const r = stats.get(name);
        const s = series.get(name);
        const h = healthClass(r && r.requests > 0 ? r.successRate : undefined);
        return (
          <section class={`card metrics ${h}`} data-testid="metrics-card" data-service={name} data-requests={r?.requests ?? 0} data-rps={r?.rps ?? 0}>
            <header>
              <h3>{name}</h3>
              <span class="muted">{r ? `${count(r.requests)} req / ${overview.window}` : 'no traffic'}</span>
            </header>
            <div class="kpis">
              <div><span class="kpi" data-testid="kpi-rps">{rps(r?.rps)}</span><span class="unit">req/s</span></div>
              <div><span class={`kpi ${h}`}>{pct(r?.successRate)}</span><span class="unit">success</span></div>
              <div><span class="kpi">{ms(r?.latencyMs.p50)}</span><span class="unit">p50</span></div>
              <div><span class="kpi">{ms(r?.latencyMs.p95)}</span><span class="unit">p95</span></div>
              <div><span class="kpi">{ms(r?.latencyMs.p99)}</span><span class="unit">p99</span></div>
            </div>
            {s && s.t.length > 1 ? (
              <div class="charts">
                <figure><figcaption>req/s</figcaption><Sparkline t={s.t} values={s.rps} color="#38bdf8" label={`${name} request rate`} /></figure>
                <figure><figcaption>p99 ms</figcaption><Sparkline t={s.t} values={s.p99} color="#a78bfa" label={`${name} p99 latency`} /></figure>
                <figure><figcaption>success %</figcaption><Sparkline t={s.t} values={s.successRate.map((x) => x * 100)} color="#34d399" range={[0, 100]} label={`${name} success rate`} /></figure>
              </div>
            ) : <p class="muted small">collecting points…</p>}
          </section>
        );
      })}
    </div>
  );
}
