/**
 * The demo's rogue caller: a service with its own sidecar and join token that tries, every few seconds,
 * to authorize a payment by calling payments over gRPC directly (through its sidecar's --outbound
 * payments listener). The AuthorizationPolicy payments-allow-checkout lets only checkout in, so
 * payments' sidecar refuses every attempt with gRPC PERMISSION_DENIED (403 FORBIDDEN) before the app
 * sees it, and reports the denial to the control plane (GET /api/v1/denials, the dashboard).
 * Its app (its sidecar's --app) answers GET / with what happened to its attempts.
 */
import { PaymentsClient } from './payments-grpc.js';
import { serveJson, type ShopApp, type SidecarListeners } from './shop.js';

export class RogueApp implements ShopApp {
  readonly service = 'rogue';
  readonly labels = { version: 'v1' };
  address = '';
  /** gRPC status name -> attempts, since start and since the last takeWindow(). */
  readonly total: Record<string, number> = {};
  private window: Record<string, number> = {};
  private payments: PaymentsClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private server: { address: string; close(): Promise<void> } | undefined;

  static async start(): Promise<RogueApp> {
    const app = new RogueApp();
    app.server = await serveJson(async (path) => (path === '/'
      ? { status: 200, body: { service: 'rogue', target: 'payments', attempts: app.total } }
      : { status: 404, body: { error: 'not found' } }));
    app.address = app.server.address;
    return app;
  }

  attach(sidecar: SidecarListeners): void {
    const at = sidecar.outbound.payments;
    if (!at) throw new Error('rogue needs an --outbound payments listener');
    this.payments ??= new PaymentsClient(at);
  }

  /** One attempt (at most one in flight), counted by its gRPC status. */
  async attempt(): Promise<string> {
    if (!this.payments) return 'UNAVAILABLE';
    const r = await this.payments.authorize({ orderId: `rogue-${Date.now().toString(36)}`, amountCents: 99_900, currency: 'EUR' });
    for (const counts of [this.total, this.window]) counts[r.status] = (counts[r.status] ?? 0) + 1;
    return r.status;
  }

  /** Tries every `everyMs`; skips a beat when the previous attempt is still running. */
  startAttempts(everyMs: number): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.inFlight) return;
      this.inFlight = this.attempt().then(() => undefined, () => undefined).finally(() => { this.inFlight = undefined; });
    }, everyMs);
  }

  takeWindow(): Record<string, number> {
    const w = this.window;
    this.window = {};
    return w;
  }

  /** Stops trying and waits for the attempt in flight. */
  async stopAttempts(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }

  async close(): Promise<void> {
    await this.stopAttempts();
    this.payments?.close();
    await this.server?.close();
  }
}
