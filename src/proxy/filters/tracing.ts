/**
 * Distributed tracing (MeshConfig.tracing {otlpEndpoint, sampling}). Built once per config version,
 * only when an otlpEndpoint is set; otherwise request-context alone keeps the headers.
 *
 * Per hop: continue the incoming W3C or B3 context (or start a trace), record one span — outbound a
 * CLIENT span, inbound a SERVER span — and rewrite traceparent (and B3, when it arrived) to this
 * span's id so the next hop is its child. Sampling (percent) is decided once, at the root: the first
 * proxy that sees no sampled flag; every later hop honours the flag. Unsampled requests only get
 * their headers rewritten. A span ends when the response body ends (or the request fails) and goes
 * to the bounded exporter (tracing/otlp-exporter.ts) without waiting.
 */
import { toMeshError } from '../../api/errors.js';
import type { ServiceFilterFactory } from '../pipeline/factory.js';
import type { HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';
import { SPAN_KIND_CLIENT, SPAN_KIND_SERVER, type OtlpHttpExporter } from '../tracing/otlp-exporter.js';
import { extractTrace, injectTrace, newSpanId, newTraceId } from '../tracing/propagation.js';

const now = (): number => performance.timeOrigin + performance.now();

export class TracingFilter implements HttpFilter {
  readonly name = 'tracing';
  constructor(
    private readonly exporter: OtlpHttpExporter,
    private readonly self: string,
    private readonly samplingPercent: number,
    /** Inbound: where the app listens (the upstream of a server span). */
    private readonly appAddress: string | undefined,
  ) {}

  private rootDecision(): boolean {
    const p = this.samplingPercent;
    return p >= 100 || (p > 0 && Math.random() * 100 < p);
  }

  async handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    const incoming = extractTrace(req.headers);
    const sampled = incoming?.sampled ?? this.rootDecision();
    const traceId = incoming?.traceId ?? newTraceId();
    const spanId = newSpanId();
    injectTrace(req.headers, traceId, spanId, sampled, incoming);
    if (!sampled) return next(req);

    const startMs = now();
    let resp: MeshResponse;
    try {
      resp = await next(req);
    } catch (err) {
      const meshErr = toMeshError(err);
      this.record(req, traceId, spanId, incoming?.parentSpanId, incoming?.traceState, startMs, meshErr.status, meshErr.code, undefined);
      throw err;
    }
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      const code = resp.headers['x-trellis-error'];
      const grpcStatus = req.grpc ? (resp.trailers?.()?.['grpc-status'] ?? resp.headers['grpc-status']) : undefined;
      this.record(req, traceId, spanId, incoming?.parentSpanId, incoming?.traceState, startMs, resp.status,
        typeof code === 'string' ? code : req.attrs.errorCode, typeof grpcStatus === 'string' ? Number(grpcStatus) : undefined);
    };
    if (!resp.body) end();
    else { resp.body.once('end', end); resp.body.once('close', end); }
    return resp;
  }

  private record(
    req: MeshRequest, traceId: string, spanId: string, parentSpanId: string | undefined, traceState: string | undefined,
    startMs: number, status: number, errorCode: string | undefined, grpcStatus: number | undefined,
  ): void {
    const outbound = req.direction === 'outbound';
    const route = req.attrs.route;
    const q = req.path.indexOf('?');
    this.exporter.add({
      traceId, spanId, parentSpanId, traceState,
      name: `${req.method} ${route ?? (outbound ? req.destination : this.self)}`,
      kind: outbound ? SPAN_KIND_CLIENT : SPAN_KIND_SERVER,
      startMs,
      endMs: now(),
      attributes: {
        'trellis.service': this.self,
        'trellis.direction': req.direction,
        'peer.service': outbound ? req.destination : (req.source.service ?? 'unknown'),
        'http.route': route,
        'http.request.method': req.method,
        'url.path': q === -1 ? req.path : req.path.slice(0, q),
        'http.response.status_code': status,
        'trellis.error_code': errorCode,
        'trellis.upstream.address': outbound ? req.attrs.upstreamAddress : this.appAddress,
        'trellis.retry.attempts': req.attrs.attempts,
        'trellis.request_id': req.requestId,
        'rpc.grpc.status_code': grpcStatus,
      },
      // Client spans fail on 4xx and 5xx, server spans on 5xx (OpenTelemetry HTTP conventions).
      error: status >= 500 || (outbound && status >= 400) || (grpcStatus !== undefined && grpcStatus !== 0),
    });
  }
}

export const tracingFactory: ServiceFilterFactory = {
  name: 'tracing',
  build: (ctx, service) => {
    const tracing = ctx.snapshot.meshConfig.tracing;
    if (!tracing?.otlpEndpoint) return null;
    const app = ctx.services.app.app;
    const appAddress = service === ctx.self ? `${app.host}:${app.port}` : undefined;
    return new TracingFilter(ctx.services.traces.get(tracing.otlpEndpoint), ctx.self, tracing.sampling ?? 1, appAddress);
  },
};
