/**
 * The demo's steady traffic generator, the mesh service `loadgen`: `rate` requests per second to
 * http://web/ through its own sidecar's HTTP proxy (so the mesh sees a loadgen → web edge), with a
 * bounded number in flight, counting successes and which catalog version answered. Its app (its
 * sidecar's --app) answers GET / with the totals.
 */
import http from 'node:http';
import { requestViaProxy, serveJson, type ShopApp, type SidecarListeners } from './shop.js';

export interface TrafficWindow {
  requests: number;
  ok: number;
  /** catalog version -> answers among successful requests. */
  versions: Record<string, number>;
  /** status (or "error") -> count among failed requests. */
  failures: Record<string, number>;
}

const emptyWindow = (): TrafficWindow => ({ requests: 0, ok: 0, versions: {}, failures: {} });

export class TrafficGenerator implements ShopApp {
  readonly service = 'loadgen';
  readonly labels = { version: 'v1' };
  address = '';
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  private timer: NodeJS.Timeout | undefined;
  private inFlight = new Set<Promise<void>>();
  private window = emptyWindow();
  readonly total = emptyWindow();
  private httpProxy: string | undefined;
  private server: { address: string; close(): Promise<void> } | undefined;

  constructor(private readonly rate = 10, private readonly maxInFlight = 50) {}

  /** The generator with its app listening (GET / answers the totals); it sends once attached and started. */
  static async start(rate: number): Promise<TrafficGenerator> {
    const gen = new TrafficGenerator(rate);
    gen.server = await serveJson(async (path) => (path === '/'
      ? { status: 200, body: { service: 'loadgen', target: 'web', rate, total: gen.total } }
      : { status: 404, body: { error: 'not found' } }));
    gen.address = gen.server.address;
    return gen;
  }

  attach(sidecar: SidecarListeners): void {
    this.httpProxy = sidecar.httpProxy;
  }

  /** One request to web, counted when it completes. */
  async once(): Promise<void> {
    let failure: string | undefined;
    let version = 'unknown';
    try {
      if (!this.httpProxy) throw new Error('sidecar not ready');
      const res = await requestViaProxy(this.httpProxy, this.agent, 'web', '/');
      if (res.status === 200) version = String((res.body as { catalogVersion?: string }).catalogVersion ?? 'unknown');
      else failure = String(res.status);
    } catch (err) {
      failure = (err as Error).message || 'error';
    }
    for (const w of [this.window, this.total]) {
      w.requests++;
      if (failure === undefined) {
        w.ok++;
        w.versions[version] = (w.versions[version] ?? 0) + 1;
      } else {
        w.failures[failure] = (w.failures[failure] ?? 0) + 1;
      }
    }
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.inFlight.size >= this.maxInFlight) return;
      const p: Promise<void> = this.once().finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }, Math.max(1, Math.round(1000 / this.rate)));
  }

  /** Returns the counts since the previous call and starts a new window. */
  takeWindow(): TrafficWindow {
    const w = this.window;
    this.window = emptyWindow();
    return w;
  }

  /** Stops sending and waits for the requests in flight. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.allSettled([...this.inFlight]);
    this.agent.destroy();
  }

  async close(): Promise<void> {
    await this.stop();
    await this.server?.close();
  }
}

export function formatWindow(w: TrafficWindow, total: TrafficWindow, seconds: number): string {
  const pct = (n: number, d: number) => (d === 0 ? '-' : `${((100 * n) / d).toFixed(1)}%`);
  const v2 = w.versions.v2 ?? 0;
  const failures = Object.entries(w.failures).map(([k, n]) => `${k}×${n}`).join(' ');
  return `traffic  last ${seconds}s: ${w.requests} req, ${pct(w.ok, w.requests)} ok, catalog v2 ${pct(v2, w.ok)}`
    + ` | total: ${total.requests} req, ${pct(total.ok, total.requests)} ok, v2 ${pct(total.versions.v2 ?? 0, total.ok)}`
    + (failures ? ` | failures: ${failures}` : '');
}
