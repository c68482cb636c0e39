/**
 * Where HTTP requests enter the pipeline, from any listener: normalises an HTTP/1.1 or HTTP/2
 * request into a MeshRequest, runs the chain of the current config (captured once, so an
 * in-flight request finishes on the config it started with), and writes the answer back.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants as h2constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { MeshError, toMeshError } from '../../api/errors.js';
import type { Protocol } from '../../api/schema/common.js';
import { errorResponse } from '../http/error-response.js';
import { endToEndHeaders, isGrpcContentType, stripMeshHeaders } from '../http/headers.js';
import { writeH1Response, writeH2Response } from '../http/response-writer.js';
import { newRequestId } from '../filters/request-context.js';
import { normaliseRequestPath } from '../authz/path.js';
import { inboundDeadline } from '../filters/timeout.js';
import type { Direction, MeshRequest, MeshResponse, Next, Peer } from '../pipeline/types.js';
import type { CompiledConfig } from '../runtime/compiled-config.js';
import type { ProxyServices } from '../runtime/services.js';
import type { DrainState } from './drain.js';
import { accessRecord } from '../access-log.js';
import { noteStreamReset } from '../http/reset-flood.js';
import { DownstreamAbort, ListenerRequest } from '../pipeline/abort.js';

const H2_NO_ERROR = h2constants.NGHTTP2_NO_ERROR;

export interface IngressOptions {
  direction: Direction;
  services: ProxyServices;
  config: () => CompiledConfig | undefined;
  drain: DrainState;
  /** Inbound: the protocol of the local app. Outbound: taken from the destination cluster. */
  selfProtocol: Protocol;
}

export class HttpIngress {
  constructor(private readonly opts: IngressOptions) {}

  private chainFor(cfg: CompiledConfig | undefined, destination: string): { chain: Next; protocol: Protocol } {
    if (!cfg) throw new MeshError('NO_HEALTHY_UPSTREAM', 'the proxy has no configuration yet');
    if (this.opts.direction === 'inbound') return { chain: cfg.inbound, protocol: this.opts.selfProtocol };
    const chain = cfg.outbound(destination);
    if (!chain) throw new MeshError('NO_ROUTE', `unknown service "${destination}"`);
    return { chain, protocol: cfg.clusters.get(destination)!.config.protocol };
  }

  handleH1(req: IncomingMessage, res: ServerResponse, source: Peer, destination: string, path = req.url ?? '/', authority = req.headers.host ?? destination): void {
    const controller = new DownstreamAbort();
    // Abort upstream work only when the downstream left before the response was written.
    let answered = false;
    res.on('close', () => { if (!answered) controller.abort(); });
    const headers = endToEndHeaders(req.headers);
    const deadline = this.callerDeadline(headers, source);
    stripMeshHeaders(headers);
    const meshReq = this.newRequest(req.method ?? 'GET', path, authority, headers, req, source, destination, controller,
      req.headers['transfer-encoding'] === undefined && (req.headers['content-length'] === undefined || req.headers['content-length'] === '0'));
    if (deadline !== undefined) meshReq.deadline = deadline;
    this.run(meshReq, (response, onDone) => writeH1Response(res, response, {
      close: this.opts.drain.draining,
      onDone: (bytes, err) => { answered = err === undefined; onDone(bytes, err); },
    }));
  }

  handleH2(stream: ServerHttp2Stream, rawHeaders: IncomingHttpHeaders, source: Peer, destination: string): void {
    const controller = new DownstreamAbort();
    // An HTTP/2 stream may close before 'finish'; only a non-zero RST code means the peer cancelled.
    stream.on('close', () => {
      if (stream.rstCode === H2_NO_ERROR) return;
      controller.abort();
      // Counted toward the rapid-reset bound only when the client cancelled before any answer
      // (not when this proxy reset a response mid-body because its upstream failed).
      if (!stream.headersSent) noteStreamReset(stream.session, performance.now(), () => this.opts.services.log.warn('HTTP/2 rapid-reset flood: session closed with GOAWAY', { direction: this.opts.direction }));
    });
    stream.on('error', () => {});
    const headers = endToEndHeaders(rawHeaders);
    const deadline = this.callerDeadline(headers, source);
    stripMeshHeaders(headers);
    const meshReq = this.newRequest(
      String(rawHeaders[':method'] ?? 'GET'), String(rawHeaders[':path'] ?? '/'),
      String(rawHeaders[':authority'] ?? rawHeaders['host'] ?? destination), headers, stream, source, destination, controller,
      stream.endAfterHeaders,
    );
    if (deadline !== undefined) meshReq.deadline = deadline;
    this.run(meshReq, (response, onDone) => writeH2Response(stream, response, { onDone }));
  }

  /**
   * Inbound only: the caller's remaining time (x-trellis-deadline), read before mesh headers are
   * stripped, from a verified mesh proxy only (a plaintext caller under mtls PERMISSIVE has no
   * identity: its copy is stripped like any x-trellis-* header).
   * Enforced by the inbound-deadline filter (filters/timeout.ts).
   */
  private callerDeadline(headers: MeshRequest['headers'], source: Peer): number | undefined {
    return this.opts.direction === 'inbound' && source.identity !== undefined ? inboundDeadline(headers) : undefined;
  }

  private newRequest(
    method: string, path: string, authority: string, headers: MeshRequest['headers'], body: MeshRequest['body'],
    source: Peer, destination: string, abort: DownstreamAbort, emptyBody: boolean,
  ): ListenerRequest {
    return new ListenerRequest(
      abort, this.opts.direction, method, path, authority, headers, body, emptyBody, 'http', isGrpcContentType(headers['content-type']),
      source, destination, typeof headers['x-request-id'] === 'string' ? headers['x-request-id'] : newRequestId(),
    );
  }

  private run(req: MeshRequest, write: (response: MeshResponse, onDone: (bytes: number, err?: Error) => void) => void): void {
    const drain = this.opts.drain;
    drain.begin();
    // Request body bytes from the downstream: paused first so counting never starts the flow early.
    let requestBytes = 0;
    if (!req.emptyBody) {
      req.body.pause();
      req.body.on('data', (chunk: Buffer) => { requestBytes += chunk.length; });
    }
    const cfg = this.opts.config();
    let response: Promise<MeshResponse>;
    try {
      req.path = normaliseRequestPath(req.path); // once, every direction: what policies check is what is forwarded (authz/path.ts); bad → 400
      const { chain, protocol } = this.chainFor(cfg, req.destination);
      req.protocol = protocol;
      response = chain(req);
    } catch (err) {
      response = Promise.reject(err);
    }
    const answer = (resp: MeshResponse): void => {
      write(resp, (responseBytes) => {
        drain.end();
        const source = req.direction === 'inbound' ? (req.source.service ?? 'unknown') : this.opts.services.service;
        const destination = req.direction === 'inbound' ? this.opts.services.service : req.destination;
        const latencyMs = performance.now() - req.startedAt;
        this.opts.services.metrics.observeRequest(req.direction, source, destination, req.attrs.route ?? 'default', resp.status, latencyMs, requestBytes, responseBytes, req.attrs.errorCode !== undefined || resp.headers['x-trellis-error'] !== undefined);
        cfg?.accessLog?.log(accessRecord(req, { source, destination, status: resp.status, latencyMs, requestBytes, responseBytes, errorHeader: resp.headers['x-trellis-error'] }));
        const tap = this.opts.services.tap?.observer; // undefined unless a live tap is on (proxy/tap/tap-hub.ts)
        if (tap !== undefined) tap(req, resp.status, req.attrs.errorCode ?? errorHeaderOf(resp.headers['x-trellis-error']), source, destination, latencyMs);
      });
    };
    response.then(answer, (err: unknown) => {
      const meshErr = toMeshError(err);
      req.attrs.errorCode = meshErr.code;
      this.opts.services.metrics.errors.labels({ direction: req.direction, code: meshErr.code }).inc();
      if (meshErr.code === 'UPSTREAM_TIMEOUT') this.opts.services.metrics.timeouts.labels({ direction: req.direction, destination: req.destination }).inc();
      req.body.resume();
      answer(errorResponse(meshErr, req.grpc));
    });
  }
}

function errorHeaderOf(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
