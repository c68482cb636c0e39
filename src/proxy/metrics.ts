/**
 * The proxy's metrics, declared up front in one place with bounded labels (no raw paths).
 * The per-request series are plain numbers rendered at scrape time (request-series.ts).
 */
import client from 'prom-client';
import { LATENCY_BUCKETS_MS } from '../api/latency-buckets.js';
import { StatsAggregator } from './stats.js';
import { RequestSeries } from './request-series.js';

// Dense enough between 1ms and 5s for p50…p99.9 (histogram_quantile interpolates inside a bucket).
export { LATENCY_BUCKETS_MS };

export class ProxyMetrics {
  readonly registry = new client.Registry();
  /** trellis_requests_total, trellis_request_duration_ms, trellis_request/response_bytes_total (request-series.ts). */
  readonly requestSeries = new RequestSeries(LATENCY_BUCKETS_MS);
  readonly tcpConnections: client.Counter<'direction' | 'peer'>;
  readonly tcpActive: client.Gauge<'direction'>;
  // Observability (issue #5): bytes, TCP close + bytes, timeouts, access-log drops.
  readonly tcpClosed: client.Counter<'direction' | 'peer'>;
  readonly tcpReceivedBytes: client.Counter<'direction' | 'peer'>;
  readonly tcpSentBytes: client.Counter<'direction' | 'peer'>;
  readonly timeouts: client.Counter<'direction' | 'destination'>;
  readonly accessLogDropped: client.Counter;
  readonly configVersion: client.Gauge;
  readonly configNacks: client.Counter;
  readonly certExpiry: client.Gauge;
  readonly outlierEjections: client.Counter<'destination'>;
  readonly errors: client.Counter<'direction' | 'code'>;
  readonly mirrored: client.Counter<'destination'>;
  readonly mirrorSkipped: client.Counter<'destination' | 'reason'>;
  // Resilience (filters/retry.ts, filters/circuit-breaker.ts, filters/rate-limit.ts).
  readonly retries: client.Counter<'destination' | 'reason'>;
  readonly retryBudgetExhausted: client.Counter<'destination'>;
  readonly retryBodyOverflows: client.Counter<'destination'>;
  readonly circuitBreakerOverflows: client.Counter<'destination' | 'limit'>;
  // Proxy→proxy connections (upstream/peer-pool.ts).
  readonly peerConnections: client.Counter<'destination' | 'protocol'>;
  readonly rateLimited: client.Counter<'scope'>;
  // Zero trust (filters/authorization.ts, filters/jwt-authentication.ts).
  readonly authzDecisions: client.Counter<'policy' | 'action' | 'decision'>;
  readonly jwtFailures: client.Counter<'reason'>;
  // Tracing (filters/tracing.ts, tracing/otlp-exporter.ts).
  readonly spansDropped: client.Counter<'reason'>;
  // Live tap (tap/tap-hub.ts).
  readonly tapSessions: client.Gauge;
  readonly tapEventsDropped: client.Counter<'reason'>;
  readonly denialsUnreported: client.Counter;

  constructor(labels: { service: string; instance: string }) {
    this.registry.setDefaultLabels(labels);
    const r = [this.registry];
    this.requestSeries.register(this.registry, {
      requests: 'Requests handled, by direction, peer services, route and response class',
      latency: 'Time from request arrival to response end, in milliseconds',
      requestBytes: 'Request body bytes received from the downstream',
      responseBytes: 'Response body bytes sent to the downstream',
    });
    this.tcpConnections = new client.Counter({ name: 'trellis_tcp_connections_opened_total', help: 'TCP connections proxied', labelNames: ['direction', 'peer'], registers: r });
    this.tcpActive = new client.Gauge({ name: 'trellis_tcp_connections_active', help: 'TCP connections open now', labelNames: ['direction'], registers: r });
    this.tcpClosed = new client.Counter({ name: 'trellis_tcp_connections_closed_total', help: 'TCP connections proxied and closed', labelNames: ['direction', 'peer'], registers: r });
    this.tcpReceivedBytes = new client.Counter({ name: 'trellis_tcp_received_bytes_total', help: 'TCP bytes received from the downstream side of a tunnel (counted when the connection closes)', labelNames: ['direction', 'peer'], registers: r });
    this.tcpSentBytes = new client.Counter({ name: 'trellis_tcp_sent_bytes_total', help: 'TCP bytes sent to the downstream side of a tunnel (counted when the connection closes)', labelNames: ['direction', 'peer'], registers: r });
    this.timeouts = new client.Counter({ name: 'trellis_timeouts_total', help: 'Requests answered 504 UPSTREAM_TIMEOUT, by direction and destination service', labelNames: ['direction', 'destination'], registers: r });
    this.accessLogDropped = new client.Counter({ name: 'trellis_access_log_dropped_total', help: 'Access log lines dropped because stdout was not draining', registers: r });
    this.configVersion = new client.Gauge({ name: 'trellis_config_version', help: 'Version of the config snapshot in use (numeric part)', registers: r });
    this.configNacks = new client.Counter({ name: 'trellis_config_nacks_total', help: 'Config snapshots refused', registers: r });
    this.certExpiry = new client.Gauge({ name: 'trellis_certificate_expiry_seconds', help: 'Unix time at which the proxy certificate expires', registers: r });
    this.outlierEjections = new client.Counter({ name: 'trellis_outlier_ejections_total', help: 'Upstream endpoints ejected by outlier detection', labelNames: ['destination'], registers: r });
    this.mirrored = new client.Counter({ name: 'trellis_mirrored_requests_total', help: 'Requests copied to a mirror backend', labelNames: ['destination'], registers: r });
    this.mirrorSkipped = new client.Counter({ name: 'trellis_mirror_skipped_total', help: 'Mirror copies not sent (body over 64 KiB) or failed', labelNames: ['destination', 'reason'], registers: r });
    this.errors = new client.Counter({ name: 'trellis_proxy_errors_total', help: 'Responses the proxy generated itself, by x-trellis-error code', labelNames: ['direction', 'code'], registers: r });
    this.retries = new client.Counter({ name: 'trellis_retries_total', help: 'Retry attempts sent, by destination and what triggered them (status, connect-failure, reset, timeout)', labelNames: ['destination', 'reason'], registers: r });
    this.retryBudgetExhausted = new client.Counter({ name: 'trellis_retry_budget_exhausted_total', help: 'Retries not sent because the retry budget or the circuit breaker maxRetries was exhausted', labelNames: ['destination'], registers: r });
    this.retryBodyOverflows = new client.Counter({ name: 'trellis_retry_body_overflow_total', help: 'Requests whose body exceeded the replay buffer, streamed once and never retried', labelNames: ['destination'], registers: r });
    this.circuitBreakerOverflows = new client.Counter({ name: 'trellis_circuit_breaker_overflows_total', help: 'Requests answered 503 CIRCUIT_OPEN, by the limit that overflowed (requests, pending, retries; peerQueue: requests waiting for an HTTP/1.1 connection to one peer)', labelNames: ['destination', 'limit'], registers: r });
    this.peerConnections = new client.Counter({ name: 'trellis_peer_connections_total', help: 'mTLS connections opened to other proxies, by destination service and protocol (http/1.1: a keep-alive pool per peer; h2: one multiplexed session per peer)', labelNames: ['destination', 'protocol'], registers: r });
    this.rateLimited = new client.Counter({ name: 'trellis_rate_limited_total', help: 'Inbound requests answered 429 RATE_LIMITED, by bucket scope (service, source)', labelNames: ['scope'], registers: r });
    this.authzDecisions = new client.Counter({ name: 'trellis_authz_decisions_total', help: 'Inbound authorization decisions, by deciding policy ("-" for the MeshConfig default or no ALLOW match), action (ALLOW, DENY, AUDIT, NO_ALLOW_MATCH, DEFAULT) and decision', labelNames: ['policy', 'action', 'decision'], registers: r });
    this.jwtFailures = new client.Counter({ name: 'trellis_jwt_failures_total', help: 'Requests refused 401 UNAUTHENTICATED by JWTAuthentication, by reason', labelNames: ['reason'], registers: r });
    this.spansDropped = new client.Counter({ name: 'trellis_spans_dropped_total', help: 'Spans not exported: queue_full (export queue at its bound), export_failed (OTLP endpoint error or timeout), shutdown', labelNames: ['reason'], registers: r });
    this.tapSessions = new client.Gauge({ name: 'trellis_tap_sessions', help: 'Live taps on this proxy', registers: r });
    this.tapEventsDropped = new client.Counter({ name: 'trellis_tap_events_dropped_total', help: 'Tapped requests not reported: rate (per-tap events per second), buffer (batch full), backpressure (config stream backlog)', labelNames: ['reason'], registers: r });
    this.denialsUnreported = new client.Counter({ name: 'trellis_authz_denials_unreported_total', help: 'Denials counted but not sent to the control plane (over the per-interval bound)', registers: r });
    this.stats.instance = labels.instance;
    this.stats.onDenialDropped = () => this.denialsUnreported.inc();
  }

  /** Golden-metrics aggregates sent to the control plane every stats interval (proxy/stats.ts). */
  readonly stats = new StatsAggregator();

  /** Records one finished request: golden-metrics row and Prometheus series, a Map lookup each. */
  observeRequest(direction: string, source: string, destination: string, route: string, status: number, ms: number, requestBytes = 0, responseBytes = 0, proxyError = false): void {
    if (direction === 'inbound' || direction === 'outbound') this.stats.record(direction, source, destination, route, status < 500 && !proxyError, ms);
    this.requestSeries.record(direction, source, destination, route, status, ms, requestBytes, responseBytes);
  }

  /** A proxied TCP connection closed: `received` from / `sent` to the downstream side. */
  observeTcpClose(direction: string, peer: string, received: number, sent: number): void {
    this.tcpClosed.labels({ direction, peer }).inc();
    if (received > 0) this.tcpReceivedBytes.labels({ direction, peer }).inc(received);
    if (sent > 0) this.tcpSentBytes.labels({ direction, peer }).inc(sent);
  }
}
