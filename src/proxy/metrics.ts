/**
 * The proxy's metrics, declared up front in one place with bounded labels (no raw paths).
 * Handles for hot-path series are resolved once per (labels) and cached.
 */
import client from 'prom-client';

export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

export class ProxyMetrics {
  readonly registry = new client.Registry();
  readonly requests: client.Counter<'direction' | 'source' | 'destination' | 'route' | 'code' | 'classification'>;
  readonly latency: client.Histogram<'direction' | 'source' | 'destination' | 'route' | 'classification'>;
  readonly tcpConnections: client.Counter<'direction' | 'peer'>;
  readonly tcpActive: client.Gauge<'direction'>;
  readonly configVersion: client.Gauge;
  readonly configNacks: client.Counter;
  readonly certExpiry: client.Gauge;
  readonly outlierEjections: client.Counter<'destination'>;
  readonly errors: client.Counter<'direction' | 'code'>;
  // Resilience (filters/retry.ts, filters/circuit-breaker.ts, filters/rate-limit.ts).
  readonly retries: client.Counter<'destination' | 'reason'>;
  readonly retryBudgetExhausted: client.Counter<'destination'>;
  readonly retryBodyOverflows: client.Counter<'destination'>;
  readonly circuitBreakerOverflows: client.Counter<'destination' | 'limit'>;
  readonly rateLimited: client.Counter<'scope'>;
  // Zero trust (filters/authorization.ts, filters/jwt-authentication.ts).
  readonly authzDecisions: client.Counter<'policy' | 'action' | 'decision'>;
  readonly jwtFailures: client.Counter<'reason'>;

  constructor(labels: { service: string; instance: string }) {
    this.registry.setDefaultLabels(labels);
    const r = [this.registry];
    this.requests = new client.Counter({ name: 'trellis_requests_total', help: 'Requests handled, by direction, peer services, route and response class', labelNames: ['direction', 'source', 'destination', 'route', 'code', 'classification'], registers: r });
    this.latency = new client.Histogram({ name: 'trellis_request_duration_ms', help: 'Time from request arrival to response end, in milliseconds', labelNames: ['direction', 'source', 'destination', 'route', 'classification'], buckets: LATENCY_BUCKETS_MS, registers: r });
    this.tcpConnections = new client.Counter({ name: 'trellis_tcp_connections_opened_total', help: 'TCP connections proxied', labelNames: ['direction', 'peer'], registers: r });
    this.tcpActive = new client.Gauge({ name: 'trellis_tcp_connections_active', help: 'TCP connections open now', labelNames: ['direction'], registers: r });
    this.configVersion = new client.Gauge({ name: 'trellis_config_version', help: 'Version of the config snapshot in use (numeric part)', registers: r });
    this.configNacks = new client.Counter({ name: 'trellis_config_nacks_total', help: 'Config snapshots refused', registers: r });
    this.certExpiry = new client.Gauge({ name: 'trellis_certificate_expiry_seconds', help: 'Unix time at which the proxy certificate expires', registers: r });
    this.outlierEjections = new client.Counter({ name: 'trellis_outlier_ejections_total', help: 'Upstream endpoints ejected by outlier detection', labelNames: ['destination'], registers: r });
    this.errors = new client.Counter({ name: 'trellis_proxy_errors_total', help: 'Responses the proxy generated itself, by x-trellis-error code', labelNames: ['direction', 'code'], registers: r });
    this.retries = new client.Counter({ name: 'trellis_retries_total', help: 'Retry attempts sent, by destination and what triggered them (status, connect-failure, reset, timeout)', labelNames: ['destination', 'reason'], registers: r });
    this.retryBudgetExhausted = new client.Counter({ name: 'trellis_retry_budget_exhausted_total', help: 'Retries not sent because the retry budget or the circuit breaker maxRetries was exhausted', labelNames: ['destination'], registers: r });
    this.retryBodyOverflows = new client.Counter({ name: 'trellis_retry_body_overflow_total', help: 'Requests whose body exceeded the replay buffer, streamed once and never retried', labelNames: ['destination'], registers: r });
    this.circuitBreakerOverflows = new client.Counter({ name: 'trellis_circuit_breaker_overflows_total', help: 'Requests answered 503 CIRCUIT_OPEN, by the limit that overflowed (requests, pending, retries)', labelNames: ['destination', 'limit'], registers: r });
    this.rateLimited = new client.Counter({ name: 'trellis_rate_limited_total', help: 'Inbound requests answered 429 RATE_LIMITED, by bucket scope (service, source)', labelNames: ['scope'], registers: r });
    this.authzDecisions = new client.Counter({ name: 'trellis_authz_decisions_total', help: 'Inbound authorization decisions, by deciding policy ("-" for the MeshConfig default or no ALLOW match), action (ALLOW, DENY, AUDIT, NO_ALLOW_MATCH, DEFAULT) and decision', labelNames: ['policy', 'action', 'decision'], registers: r });
    this.jwtFailures = new client.Counter({ name: 'trellis_jwt_failures_total', help: 'Requests refused 401 UNAUTHENTICATED by JWTAuthentication, by reason', labelNames: ['reason'], registers: r });
  }

  private readonly requestHandles = new Map<string, { count: client.Counter.Internal; latency: client.Histogram.Internal<string> }>();

  /** Records one finished request; label handles are cached per label combination. */
  observeRequest(direction: string, source: string, destination: string, route: string, status: number, ms: number): void {
    const classification = status >= 500 ? 'failure' : 'success';
    const key = `${direction}|${source}|${destination}|${route}|${status}`;
    let h = this.requestHandles.get(key);
    if (!h) {
      h = {
        count: this.requests.labels({ direction, source, destination, route, code: String(status), classification }),
        latency: this.latency.labels({ direction, source, destination, route, classification }),
      };
      if (this.requestHandles.size < 10_000) this.requestHandles.set(key, h);
    }
    h.count.inc();
    h.latency.observe(ms);
  }
}
