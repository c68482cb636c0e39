/**
 * The live state: one GET /api/v1/events stream (TrellisClient.events) shared by every view. Each `overview` event
 * replaces the overview and appends one point per service to bounded time series (the first event's `history`
 * fills them, so charts do not start empty). Reconnects with backoff; a 401 asks for the admin token.
 */
import { useEffect, useState } from 'preact/hooks';
import type { Overview, ServicePoint } from '../../src/sdk/client.js';
import { client, isUnauthenticated, onClientChange } from './api.js';

/** Points kept per service (~10 min at one point every 2 s). */
export const MAX_POINTS = 300;

export interface Series { t: number[]; rps: number[]; successRate: number[]; p50: number[]; p99: number[] }

export type Connection = 'connecting' | 'live' | 'reconnecting' | 'unauthenticated';

export interface LiveState {
  overview?: Overview;
  series: Map<string, Series>;
  connection: Connection;
  error?: string;
  /** Local time of the last overview received. */
  receivedAt?: number;
  /** Overviews received since the page loaded. */
  updates: number;
}

type Listener = (s: LiveState) => void;

class LiveFeed {
  state: LiveState = { series: new Map(), connection: 'connecting', updates: 0 };
  private readonly listeners = new Set<Listener>();
  private abort?: AbortController;
  private retryMs = 1000;
  private timer?: number;

  constructor() {
    onClientChange(() => this.restart());
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    if (this.listeners.size === 1 && !this.abort) this.restart();
    return () => { this.listeners.delete(l); };
  }

  private set(patch: Partial<LiveState>): void {
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l(this.state);
  }

  restart(): void {
    this.abort?.abort();
    window.clearTimeout(this.timer);
    const abort = new AbortController();
    this.abort = abort;
    void this.run(abort);
  }

  private async run(abort: AbortController): Promise<void> {
    try {
      for await (const msg of client().events({ signal: abort.signal })) {
        this.retryMs = 1000;
        this.receive(msg.overview);
      }
      if (abort.signal.aborted) return;
      this.set({ connection: 'reconnecting', error: 'the control plane ended the stream' });
    } catch (err) {
      if (abort.signal.aborted) return;
      if (isUnauthenticated(err)) { this.set({ connection: 'unauthenticated', error: (err as Error).message }); return; }
      this.set({ connection: 'reconnecting', error: (err as Error).message });
    }
    this.timer = window.setTimeout(() => { if (this.abort === abort) this.restart(); }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 15_000);
  }

  private receive(o: Overview): void {
    const series = new Map(this.state.series);
    const add = (at: number, points: ServicePoint[]) => {
      for (const p of points) {
        let s = series.get(p.service);
        if (!s) { s = { t: [], rps: [], successRate: [], p50: [], p99: [] }; series.set(p.service, s); }
        const last = s.t[s.t.length - 1];
        if (last !== undefined && at <= last) continue;
        s.t.push(at); s.rps.push(p.rps); s.successRate.push(p.successRate); s.p50.push(p.p50); s.p99.push(p.p99);
        if (s.t.length > MAX_POINTS) for (const k of ['t', 'rps', 'successRate', 'p50', 'p99'] as const) s[k].splice(0, s.t.length - MAX_POINTS);
      }
    };
    for (const h of o.history?.points ?? []) add(Date.parse(h.at) / 1000, h.services);
    add(Date.parse(o.at) / 1000, o.stats.services.map((r) => ({ service: r.service, rps: r.rps, successRate: r.successRate, p50: r.latencyMs.p50, p99: r.latencyMs.p99 })));
    // Copy the touched arrays so charts see a new object.
    for (const [k, s] of series) series.set(k, { t: [...s.t], rps: [...s.rps], successRate: [...s.successRate], p50: [...s.p50], p99: [...s.p99] });
    this.set({ overview: o, series, connection: 'live', error: undefined, receivedAt: Date.now(), updates: this.state.updates + 1 });
  }
}

export const feed = new LiveFeed();

export function useLive(): LiveState {
  const [state, setState] = useState(feed.state);
  useEffect(() => feed.subscribe(setState), []);
  return state;
}
