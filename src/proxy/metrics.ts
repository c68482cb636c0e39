/**
 * The proxy's metrics, declared up front in one place with bounded labels (no raw paths).
 * The per-request series are plain numbers rendered at scrape time (request-series.ts).
 */
import { Counter, Gauge, Registry } from './prom-client-core.js';
import { LATENCY_BUCKETS_MS } from '../api/latency-buckets.js';
import { StatsAggregator } from './stats.js';
import { RequestSeries } from './request-series.js';

// Dense enough between 1ms and 5s for p50…p99.9 (histogram_quantile interpolates inside a bucket).
export { LATENCY_BUCKETS_MS };

export class ProxyMetrics {
  readonly registry = new Registry();
  /** trellis_requests_total, trellis_request_duration_ms, trellis_request/response_bytes_total (request-series.ts). */
  readonly requestSeries = new RequestSeries(LATENCY_BUCKETS_MS);
  readonly tcpConnections: Counter<'direction' | 'peer'>;
  readonly tcpActive: Gauge<'direction'>;
  // Observability (issue #5): bytes, TCP close + bytes, timeouts, access-log drops.
  readonly tcpClosed: Counter<'direction' | 'peer'>;
  readonly tcpReceivedBytes: Counter<'direction' | 'peer'>;
  readonly tcpSentBytes: Counter<'direction' | 'peer'>;
  readonly timeouts: Counter<'direction' | 'destination'>;
  readonly accessLogDropped: Counter;
  readonly configVersion: Gauge;
  readonly configNacks: Counter;
  readonly certExpiry: Gauge;
  readonly outlierEjections: Counter<'destination'>;
  readonly errors: Counter<'direction' | 'code'>;
  readonly mirrored: Counter<'destination'>;
  readonly mirrorSkipped: Counter<'destination' | 'reason'>;
  // Resilience (filters/retry.ts, filters/circuit-breaker.ts, filters/rate-limit.ts).
  readonly retries: Counter<'destination' | 'reason'>;
  readonly retryBudgetExhausted: Counter<'destination'>;
  readonly retryBodyOverflows: Counter<'destination'>;
  readonly circuitBreakerOverflows: Counter<'destination' | 'limit'>;
  // Proxy→proxy connections (upstream/peer-pool.ts).
  readonly peerConnections: Counter<'destination' | 'protocol'>;
  readonly rateLimited: Counter<'scope'>;
  // Zero trust (filters/authorization.ts, filters/jwt-authentication.ts).
  readonly authzDecisions: Counter<'policy' | 'action' | 'decision'>;
  readonly jwtFailures: Counter<'reason'>;
  // Tracing (filters/tracing.ts, tracing/otlp-exporter.ts).
  readonly spansDropped: Counter<'reason'>;
  // Live tap (tap/tap-hub.ts).
  readonly tapSessions: Gauge;
  readonly tapEventsDropped: Counter<'reason'>;
  readonly denialsUnreported: Counter;
  // MeshConfig mtls PERMISSIVE (listeners/inbound.ts, listeners/protocol-sniff.ts).
  readonly inboundPlaintextConnections: Counter<'protocol'>;
  readonly inboundSniffFailures: Counter<'reason'>;

  constructor(labels: { service: string; instance: string }) {
    this.registry.setDefaultLabels(labels);
    const r = [this.registry];
    this.requestSeries.register(this.registry, {
      requests: 'Requests handled, by direction, peer services, route and response class',
      latency: 'Time from request arrival to response end, in milliseconds',
      requestBytes: 'Request body bytes received from the downstream',
      responseBytes: 'Response body bytes sent to the downstream',
    });
    this.tcpConnections = new Counter({ name: 'trellis_tcp_connections_opened_total', help: 'TCP connections proxied', labelNames: ['direction', 'peer'], registers: r });
    this.tcpActive = new Gauge({ name: 'trellis_tcp_connections_active', help: 'TCP connections open now', labelNames: ['direction'], registers: r });
    this.tcpClosed = new Counter({ name: 'trellis_tcp_connections_closed_total', help: 'TCP connections proxied and closed', labelNames: ['direction', 'peer'], registers: r });
    this.tcpReceivedBytes = new Counter({ name: 'trellis_tcp_received_bytes_total', help: 'TCP bytes received from the downstream side of a tunnel (counted when the connection closes)', labelNames: ['direction', 'peer'], registers: r });
    this.tcpSentBytes = new Counter({ name: 'trellis_tcp_sent_bytes_total', help: 'TCP bytes sent to the downstream side of a tunnel (counted when the connection closes)', labelNames: ['direction', 'peer'], registers: r });
    this.timeouts = new Counter({ name: 'trellis_timeouts_total', help: 'Requests answered 504 UPSTREAM_TIMEOUT, by direction and destination service', labelNames: ['direction', 'destination'], registers: r });
    this.accessLogDropped = new Counter({ name: 'trellis_access_log_dropped_total', help: 'Access log lines dropped because stdout was not draining', registers: r });
    this.configVersion = new Gauge({ name: 'trellis_config_version', help: 'Version of the config snapshot in use (numeric part)', registers: r });
    this.configNacks = new Counter({ name: 'trellis_config_nacks_total', help: 'Config snapshots refused', registers: r });
    this.certExpiry = new Gauge({ name: 'trellis_certificate_expiry_seconds', help: 'Unix time at which the proxy certificate expires', registers: r });
    this.outlierEjections = new Counter({ name: 'trellis_outlier_ejections_total', help: 'Upstream endpoints ejected by outlier detection', labelNames: ['destination'], registers: r });
    this.mirrored = new Counter({ name: 'trellis_mirrored_requests_total', help: 'Requests copied to a mirror backend', labelNames: ['destination'], registers: r });
    this.mirrorSkipped = new Counter({ name: 'trellis_mirror_skipped_total', help: 'Mirror copies not sent (body over 64 KiB) or failed', labelNames: ['destination', 'reason'], registers: r });
    this.errors = new Counter({ name: 'trellis_proxy_errors_total', help: 'Responses the proxy generated itself, by x-trellis-error code', labelNames: ['direction', 'code'], registers: r });
    this.retries = new Counter({ name: 'trellis_retries_total', help: 'Retry attempts sent, by destination and what triggered them (status, connect-failure, reset, timeout)', labelNames: ['destination', 'reason'], registers: r });
    this.retryBudgetExhausted = new Counter({ name: 'trellis_retry_budget_exhausted_total', help: 'Retries not sent because the retry budget or the circuit breaker maxRetries was exhausted', labelNames: ['destination'], registers: r });
    this.retryBodyOverflows = new Counter({ name: 'trellis_retry_body_overflow_total', help: 'Requests whose body exceeded the replay buffer, streamed once and never retried', labelNames: ['destination'], registers: r });
    this.circuitBreakerOverflows = new Counter({ name: 'trellis_circuit_breaker_overflows_total', help: 'Requests answered 503 CIRCUIT_OPEN, by the limit that overflowed (requests, pending, retries; peerQueue: requests waiting for an HTTP/1.1 connection to one peer)', labelNames: ['destination', 'limit'], registers: r });
    this.peerConnections = new Counter({ name: 'trellis_peer_connections_total', help: 'mTLS connections opened to other proxies, by destination service and protocol (http/1.1: a keep-alive pool per peer; h2: one multiplexed session per peer)', labelNames: ['destination', 'protocol'], registers: r });
    this.rateLimited = new Counter({ name: 'trellis_rate_limited_total', help: 'Inbound requests answered 429 RATE_LIMITED, by bucket scope (service, source)', labelNames: ['scope'], registers: r });
    this.authzDecisions = new Counter({ name: 'trellis_authz_decisions_total', help: 'Inbound authorization decisions, by deciding policy ("-" for the MeshConfig default or no ALLOW match), action (ALLOW, DENY, AUDIT, NO_ALLOW_MATCH, DEFAULT) and decision', labelNames: ['policy', 'action', 'decision'], registers: r });
    this.jwtFailures = new Counter({ name: 'trellis_jwt_failures_total', help: 'Requests refused 401 UNAUTHENTICATED by JWTAuthentication, by reason', labelNames: ['reason'], registers: r });
    this.spansDropped = new Counter({ name: 'trellis_spans_dropped_total', help: 'Spans not exported: queue_full (export queue at its bound), export_failed (OTLP endpoint error or timeout), shutdown', labelNames: ['reason'], registers: r });
    this.tapSessions = new Gauge({ name: 'trellis_tap_sessions', help: 'Live taps on this proxy', registers: r });
    this.tapEventsDropped = new Counter({ name: 'trellis_tap_events_dropped_total', help: 'Tapped requests not reported: rate (per-tap events per second), buffer (batch full), backpressure (config stream backlog)', labelNames: ['reason'], registers: r });
    this.denialsUnreported = new Counter({ name: 'trellis_authz_denials_unreported_total', help: 'Denials counted but not sent to the control plane (over the per-interval bound)', registers: r });
    this.inboundPlaintextConnections = new Counter({ name: 'trellis_inbound_plaintext_connections_total', help: 'Plaintext connections accepted on the inbound port (MeshConfig mtls PERMISSIVE), by protocol (http/1.1, h2c, tcp); their requests carry no peer identity (source "unknown")', labelNames: ['protocol'], registers: r });
    this.inboundSniffFailures = new Counter({ name: 'trellis_inbound_sniff_failures_total', help: 'New inbound connections closed after the PERMISSIVE protocol sniff, by reason: silent (nothing decisive within the sniff timeout, HTTP services), garbage (neither TLS nor HTTP), closed (the client left first), strict (STRICT applied meanwhile)', labelNames: ['reason'], registers: r });
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
