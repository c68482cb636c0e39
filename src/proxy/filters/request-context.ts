/**
 * Every request carries an x-request-id and a W3C traceparent end to end. An incoming pair is kept
 * (so apps that forward them keep one trace); a missing one is created here.
 */
import { randomUUID } from 'node:crypto';
import type { ServiceFilterFactory } from '../pipeline/factory.js';
import type { HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';
import { newSpanId, newTraceId } from '../tracing/propagation.js';

const TRACEPARENT_RE = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

class RequestContext implements HttpFilter {
  readonly name = 'request-context';
  handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    if (typeof req.headers['x-request-id'] !== 'string') req.headers['x-request-id'] = req.requestId;
    const tp = req.headers['traceparent'];
    if (typeof tp !== 'string' || !TRACEPARENT_RE.test(tp)) {
      req.headers['traceparent'] = `00-${newTraceId()}-${newSpanId()}-01`; // pooled random bytes (tracing/propagation.ts), not randomBytes() per id
      delete req.headers['tracestate'];
    }
    return next(req);
  }
}

export const requestContextFactory: ServiceFilterFactory = {
  name: 'request-context',
  build: () => new RequestContext(),
};

export function newRequestId(): string {
  return randomUUID();
}
