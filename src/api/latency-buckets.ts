/**
 * Latency histogram bucket upper bounds (ms), shared by the proxy's Prometheus histogram
 * (`trellis_request_duration_ms`) and the golden-metrics stats the proxies send the control plane
 * (one count per bucket plus an overflow count above the last bound). Pure: no imports.
 */
// Dense enough between 1ms and 5s for p50…p99.9 (quantiles interpolate inside a bucket).
export const LATENCY_BUCKETS_MS: number[] = [1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000];
