/**
 * RequestMirror: copies a percent of a rule's requests to another backend ("shadow" traffic).
 * The copy is sent only once the primary's request body has fully arrived, from a bounded buffer;
 * its response is discarded and its failures ignored, so it never slows or fails the primary.
 * A body larger than the buffer is not mirrored (counted in trellis_mirror_skipped_total).
 */
import { PassThrough, Readable } from 'node:stream';
import type { HTTPRouteFilter } from '../../api/schema/resources.js';
import type { RuleFilterFactory } from '../pipeline/factory.js';
import type { HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';
import type { ProxyMetrics } from '../metrics.js';
import { Router, resolveBackends } from './router.js';

/** Largest request body a mirror copy buffers. */
export const MIRROR_BODY_LIMIT = 64 * 1024;
/** A mirror request that takes longer is abandoned. */
export const MIRROR_TIMEOUT_MS = 10_000;

type MirrorSpec = Extract<HTTPRouteFilter, { type: 'RequestMirror' }>['requestMirror'];

export class RequestMirror implements HttpFilter {
  readonly name = 'request-mirror';

  constructor(
    private readonly target: string,
    private readonly router: Router,
    private readonly percent: number,
    private readonly metrics: ProxyMetrics,
    private readonly random: () => number = Math.random,
  ) {}

  handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    if (this.random() * 100 >= this.percent) return next(req);
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MIRROR_BODY_LIMIT) {
      this.metrics.mirrorSkipped.labels({ destination: this.target, reason: 'body_too_large' }).inc();
      return next(req);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let overflow = false;
    const headers = { ...req.headers };
    const copyOf = (body: Buffer): MeshRequest => ({
      ...req,
      headers,
      authority: `${req.authority}-shadow`,
      body: Readable.from(body.length ? [body] : []),
      destination: this.target,
      signal: AbortSignal.timeout(MIRROR_TIMEOUT_MS),
      attrs: {},
    });
    // Tee: the primary reads from a PassThrough fed by pipe (backpressure intact); the copy is captured alongside.
    const original = req.body;
    const primary = new PassThrough();
    original.on('error', (err) => primary.destroy(err));
    original.on('data', (chunk: Buffer) => {
      if (overflow) return;
      size += chunk.length;
      if (size > MIRROR_BODY_LIMIT) {
        overflow = true;
        chunks.length = 0;
        this.metrics.mirrorSkipped.labels({ destination: this.target, reason: 'body_too_large' }).inc();
      } else {
        chunks.push(chunk);
      }
    });
    original.once('end', () => {
      if (overflow) return;
      this.metrics.mirrored.labels({ destination: this.target }).inc();
      this.router.handle(copyOf(Buffer.concat(chunks))).then(
        (res) => { res.body?.resume(); },
        () => { this.metrics.mirrorSkipped.labels({ destination: this.target, reason: 'failed' }).inc(); },
      );
    });
    original.pipe(primary);
    req.body = primary;
    return next(req);
  }
}

export const requestMirrorFactory: RuleFilterFactory = {
  name: 'request-mirror',
  build(ctx, rule, _routeName, service) {
    const mirrors = (rule.filters ?? []).filter((f): f is Extract<HTTPRouteFilter, { type: 'RequestMirror' }> => f.type === 'RequestMirror');
    if (mirrors.length === 0) return null;
    if (mirrors.length > 1) throw new Error(`rule of ${service} has more than one RequestMirror filter`);
    const spec: MirrorSpec = mirrors[0]!.requestMirror;
    const router = new Router(resolveBackends([{ ...spec.backendRef, weight: 1 }], service, ctx.clusters), ctx.services);
    return new RequestMirror(spec.backendRef.name, router, spec.percent, ctx.services.metrics);
  },
};
