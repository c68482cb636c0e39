/**
 * The service graph's model and layout: nodes are services (plus one "clients" node per service that callers outside
 * the mesh enter through — the self-edges of the stats), edges are calls seen in the window. dagre (a layered graph
 * layout, left to right) places them; the view draws SVG from the result.
 */
import dagre from '@dagrejs/dagre';
import type { Overview, StatsRowView } from '../../src/sdk/client.js';

export const NODE_W = 210;
export const NODE_H = 64;
const EDGE_LABEL_W = 128;
const EDGE_LABEL_H = 20;

export interface GraphNode {
  id: string;
  /** The service; undefined for a "clients" entry node. */
  service?: string;
  label: string;
  x: number; y: number; width: number; height: number;
  stats?: StatsRowView;
  instances: number;
  connected: number;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  stats: StatsRowView;
  points: { x: number; y: number }[];
  labelX: number;
  labelY: number;
}

export interface GraphLayout { nodes: GraphNode[]; edges: GraphEdge[]; width: number; height: number }

export const clientsNodeId = (service: string) => `clients:${service}`;

export function layoutGraph(o: Overview): GraphLayout {
  const g = new dagre.graphlib.Graph<{ rankdir: string }, { width: number; height: number; x?: number; y?: number }, { width: number; height: number; labelpos: string; points?: { x: number; y: number }[]; x?: number; y?: number }>();
  g.setGraph({ rankdir: 'LR', nodesep: 36, ranksep: 110, edgesep: 24, marginx: 24, marginy: 24 } as never);
  g.setDefaultEdgeLabel(() => ({ width: EDGE_LABEL_W, height: EDGE_LABEL_H, labelpos: 'c' }));

  const statsOf = new Map(o.stats.services.map((r) => [r.service, r]));
  const summaryOf = new Map(o.services.map((s) => [s.name, s]));
  const names = new Set(o.services.map((s) => s.name));
  for (const e of o.stats.edges) { names.add(e.service); if (e.source) names.add(e.source); }
  for (const name of [...names].sort()) g.setNode(name, { width: NODE_W, height: NODE_H });

  const edges: { id: string; source: string; target: string; stats: StatsRowView }[] = [];
  for (const e of o.stats.edges) {
    if (!e.source) continue;
    const source = e.source === e.service ? clientsNodeId(e.service) : e.source;
    if (source !== e.source) g.setNode(source, { width: 104, height: 40 });
    edges.push({ id: `${e.source}->${e.service}`, source, target: e.service, stats: e });
    g.setEdge(source, e.service, { width: EDGE_LABEL_W, height: EDGE_LABEL_H, labelpos: 'c' });
  }
  dagre.layout(g as never);

  const nodes: GraphNode[] = g.nodes().map((id) => {
    const n = g.node(id);
    const isClients = id.startsWith('clients:');
    const service = isClients ? undefined : id;
    const summary = service ? summaryOf.get(service) : undefined;
    const stats = service ? statsOf.get(service) : undefined;
    return {
      id, label: isClients ? 'clients' : id, x: n.x ?? 0, y: n.y ?? 0, width: n.width, height: n.height,
      ...(service ? { service } : {}), ...(stats ? { stats } : {}),
      instances: summary?.instances ?? 0, connected: summary?.connected ?? 0,
    };
  });
  const out: GraphEdge[] = edges.map((e) => {
    const l = g.edge(e.source, e.target);
    return { ...e, points: l.points ?? [], labelX: l.x ?? 0, labelY: l.y ?? 0 };
  });
  const graph = g.graph() as unknown as { width?: number; height?: number };
  return { nodes, edges: out, width: Math.max(graph.width ?? 0, 200), height: Math.max(graph.height ?? 0, 120) };
}

/** A smooth SVG path through dagre's edge points (quadratic segments between midpoints). */
export function edgePath(points: { x: number; y: number }[]): string {
  if (points.length === 0) return '';
  const [first, ...rest] = points;
  if (rest.length === 0) return `M${first!.x},${first!.y}`;
  let d = `M${first!.x},${first!.y}`;
  for (let i = 0; i < rest.length - 1; i++) {
    const p = rest[i]!;
    const next = rest[i + 1]!;
    d += ` Q${p.x},${p.y} ${(p.x + next.x) / 2},${(p.y + next.y) / 2}`;
  }
  const last = rest[rest.length - 1]!;
  return `${d} L${last.x},${last.y}`;
}
