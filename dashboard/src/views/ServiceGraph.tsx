/**
 * The live service graph: services as nodes (request rate, success rate, instances), calls as edges coloured by
 * success rate and labelled with request rate and p99. Laid out by dagre (graph-layout.ts), drawn as SVG.
 */
import { useMemo } from 'preact/hooks';
import type { Overview } from '../../../src/sdk/client.js';
import { edgePath, layoutGraph } from '../graph-layout.js';
import { healthClass, ms, pct, rps } from '../format.js';

export function ServiceGraph({ overview, selected, onSelect }: { overview: Overview; selected?: string; onSelect?: (service: string) => void }) {
  const layout = useMemo(() => layoutGraph(overview), [overview]);
  if (layout.nodes.length === 0) return <p class="empty">No services yet: start proxies or apply Service resources.</p>;
  return (
    <svg class="graph" viewBox={`0 0 ${layout.width} ${layout.height}`} width={layout.width} height={layout.height}
      role="img" aria-label="service graph" data-testid="service-graph">
      <defs>
        {(['ok', 'warn', 'bad', 'idle'] as const).map((c) => (
          <marker id={`arrow-${c}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class={`arrowhead ${c}`} />
          </marker>
        ))}
      </defs>
      {layout.edges.map((e) => {
        const h = healthClass(e.stats.requests > 0 ? e.stats.successRate : undefined);
        const width = Math.min(6, 1.5 + Math.log10(1 + e.stats.rps) * 2);
        return (
          <g class={`edge ${h}`} data-testid="graph-edge" data-edge={e.id} data-rps={e.stats.rps} data-success-rate={e.stats.successRate}>
            <title>{`${e.id}: ${rps(e.stats.rps)} req/s, ${pct(e.stats.successRate, 2)} success, p50 ${ms(e.stats.latencyMs.p50)}, p99 ${ms(e.stats.latencyMs.p99)}`}</title>
            <path d={edgePath(e.points)} stroke-width={width} marker-end={`url(#arrow-${h})`} />
            <g transform={`translate(${e.labelX},${e.labelY})`}>
              <rect x={-62} y={-10} width={124} height={20} rx={10} class="edge-label-bg" />
              <text text-anchor="middle" dy="4" class="edge-label">{`${rps(e.stats.rps)}/s · p99 ${ms(e.stats.latencyMs.p99)}`}</text>
            </g>
          </g>
        );
      })}
      {layout.nodes.map((n) => {
        const x = n.x - n.width / 2;
        const y = n.y - n.height / 2;
        if (!n.service) {
          return (
            <g class="node clients" transform={`translate(${x},${y})`}>
              <rect width={n.width} height={n.height} rx={20} />
              <text x={n.width / 2} y={n.height / 2 + 4} text-anchor="middle">clients</text>
            </g>
          );
        }
        const h = healthClass(n.stats && n.stats.requests > 0 ? n.stats.successRate : undefined);
        return (
          <g class={`node ${h} ${selected === n.service ? 'selected' : ''}`} transform={`translate(${x},${y})`}
            data-testid="graph-node" data-service={n.service} onClick={() => onSelect?.(n.service!)}>
            <title>{`${n.service}: ${n.connected}/${n.instances} instances connected`}</title>
            <rect width={n.width} height={n.height} rx={10} />
            <rect width={5} height={n.height} rx={2} class="health-bar" />
            <text x={16} y={24} class="node-name">{n.service}</text>
            <text x={n.width - 12} y={24} text-anchor="end" class="node-instances">{`${n.connected}/${n.instances} up`}</text>
            <text x={16} y={46} class="node-stats">
              {n.stats ? `${rps(n.stats.rps)}/s  ${pct(n.stats.successRate)}  p99 ${ms(n.stats.latencyMs.p99)}` : 'no traffic'}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
