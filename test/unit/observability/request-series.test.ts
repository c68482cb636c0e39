/**
 * The proxy's per-request Prometheus series (src/proxy/request-series.ts) are plain numbers rendered
 * at scrape time; their exposition must be exactly what prom-client's Counter and Histogram produce
 * for the same observations.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import client from 'prom-client';
import { LATENCY_BUCKETS_MS } from '../../../src/api/latency-buckets.js';
import { RequestSeries } from '../../../src/proxy/request-series.js';
import { ProxyMetrics } from '../../../src/proxy/metrics.js';

const HELP = { requests: 'requests help', latency: 'latency help', requestBytes: 'req bytes help', responseBytes: 'resp bytes help' };

type Obs = [direction: string, source: string, destination: string, route: string, status: number, ms: number, reqBytes: number, respBytes: number];

const OBSERVATIONS: Obs[] = [
  ['outbound', 'web', 'catalog', 'default', 200, 0.4, 0, 1024],
  ['outbound', 'web', 'catalog', 'default', 200, 3.2, 10, 1024],
  ['outbound', 'web', 'catalog', 'default', 503, 7.5, 0, 0], // failure class, no bytes
  ['outbound', 'web', 'catalog', 'canary/0', 200, 12_000, 0, 16], // above every bound
  ['inbound', 'web', 'catalog', 'default', 404, 1, 0, 20],
  ['inbound', 'we"b\\x', 'catalog', 'default', 200, 2.5, 5, 0], // label value escaping
  ['outbound', 'web', 'catalog', 'default', 200, 1.25, 0, 1024],
];

/** The same observations through prom-client's own metrics, as the proxy did before. */
function reference(registry: client.Registry): void {
  const r = [registry];
  const requests = new client.Counter({ name: 'trellis_requests_total', help: HELP.requests, labelNames: ['direction', 'source', 'destination', 'route', 'code', 'classification'], registers: r });
  const latency = new client.Histogram({ name: 'trellis_request_duration_ms', help: HELP.latency, labelNames: ['direction', 'source', 'destination', 'route', 'classification'], buckets: LATENCY_BUCKETS_MS, registers: r });
  const reqBytes = new client.Counter({ name: 'trellis_request_bytes_total', help: HELP.requestBytes, labelNames: ['direction', 'source', 'destination', 'route'], registers: r });
  const respBytes = new client.Counter({ name: 'trellis_response_bytes_total', help: HELP.responseBytes, labelNames: ['direction', 'source', 'destination', 'route'], registers: r });
  for (const [direction, source, destination, route, status, ms, rq, rs] of OBSERVATIONS) {
    const classification = status >= 500 ? 'failure' : 'success';
    requests.labels({ direction, source, destination, route, code: String(status), classification }).inc();
    latency.labels({ direction, source, destination, route, classification }).observe(ms);
    if (rq > 0) reqBytes.labels({ direction, source, destination, route }).inc(rq);
    if (rs > 0) respBytes.labels({ direction, source, destination, route }).inc(rs);
  }
}

/** Exposition lines, sorted (series order inside a family does not matter to Prometheus). */
const lines = (text: string) => text.split('\n').filter((l) => l !== '').sort();

describe('RequestSeries', () => {
  it('renders the same Prometheus text as prom-client Counter and Histogram', async () => {
    const ours = new client.Registry();
    ours.setDefaultLabels({ service: 'web', instance: 'web-1' });
    const series = new RequestSeries(LATENCY_BUCKETS_MS);
    series.register(ours, HELP);
    for (const o of OBSERVATIONS) series.record(...o);

    const theirs = new client.Registry();
    theirs.setDefaultLabels({ service: 'web', instance: 'web-1' });
    reference(theirs);

    const got = await ours.metrics();
    assert.deepEqual(lines(got), lines(await theirs.metrics()));
    // Sanity: the values are really there.
    assert.match(got, /trellis_requests_total\{direction="outbound",source="web",destination="catalog",route="default",code="200",classification="success",service="web",instance="web-1"\} 3/);
    assert.match(got, /trellis_request_duration_ms_bucket\{le="\+Inf",service="web",instance="web-1",direction="outbound",source="web",destination="catalog",route="canary\/0",classification="success"\} 1/);
  });

  it('is what ProxyMetrics exposes for finished requests', async () => {
    const m = new ProxyMetrics({ service: 'web', instance: 'web-1' });
    m.observeRequest('outbound', 'web', 'catalog', 'default', 200, 2, 0, 1024);
    m.observeRequest('outbound', 'web', 'catalog', 'default', 502, 9, 0, 0, true);
    const text = await m.registry.metrics();
    assert.match(text, /trellis_requests_total\{direction="outbound",source="web",destination="catalog",route="default",code="502",classification="failure",service="web",instance="web-1"\} 1/);
    assert.match(text, /trellis_response_bytes_total\{direction="outbound",source="web",destination="catalog",route="default",service="web",instance="web-1"\} 1024/);
    assert.match(text, /trellis_request_duration_ms_count\{service="web",instance="web-1",direction="outbound",source="web",destination="catalog",route="default",classification="success"\} 1/);
    assert.doesNotMatch(text, /trellis_request_bytes_total\{/); // no request body bytes yet: no series, as before
  });
});
