/**
 * The proxy's request model. Every HTTP-family request (HTTP/1.1, HTTP/2, gRPC), whichever
 * listener it arrived on, is normalised into a MeshRequest and answered with a MeshResponse.
 * Filters are onion-style middleware over these (tower layers / undici interceptors).
 */
import type { Readable } from 'node:stream';
import type { Protocol } from '../../api/schema/common.js';

export type HeaderValue = string | string[];
export type HeaderMap = Record<string, HeaderValue>;

export type Direction = 'inbound' | 'outbound';

export interface Peer {
  /** The verified SPIFFE ID of the caller (inbound only; from its certificate, never a header). */
  identity?: string;
  /** The calling service (inbound: parsed from the identity; outbound: this proxy's own service). */
  service?: string;
  /** Remote socket address, for logs. */
  address?: string;
}

export interface MeshRequest {
  readonly direction: Direction;
  method: string;
  /** Path with query string, as forwarded. */
  path: string;
  authority: string;
  /** Lower-case header names; no pseudo-headers, no hop-by-hop headers. */
  headers: HeaderMap;
  /** The request body as it streams from downstream (may be replaced by a replayable buffer). */
  body: Readable;
  /**
   * True when the request is known to carry no body: HTTP/1.1 without Content-Length (or with 0) and
   * without Transfer-Encoding, HTTP/2 with END_STREAM on its HEADERS. Forwarded without a DATA frame
   * (HTTP/2) or body framing (HTTP/1.1); `body` is then only drained.
   */
  readonly emptyBody?: boolean;
  /** Protocol of the destination service (drives upstream framing). */
  protocol: Protocol;
  readonly grpc: boolean;
  readonly source: Peer;
  /** The destination service name. */
  destination: string;
  readonly requestId: string;
  /** process.hrtime-based ms at arrival (performance.now()). */
  readonly startedAt: number;
  /** Absolute deadline in performance.now() ms, when one applies. */
  deadline?: number;
  /**
   * Aborted when the downstream goes away; upstream work must stop. Requests from a listener compute it
   * on first read (pipeline/abort.ts), so a copy made with spread must set its own `signal`
   * (`{ ...req, signal }`, as the timeout, retry and mirror filters do). Forwarders subscribe with
   * `whenAborted(req, fn)`, which does not build an AbortSignal for the common request.
   */
  readonly signal: AbortSignal;
  /** Scratch space filters use to tell later filters and the access log what happened. */
  readonly attrs: RequestAttributes;
}

export interface RequestAttributes {
  route?: string;
  upstreamAddress?: string;
  upstreamInstance?: string;
  attempts?: number;
  errorCode?: string;
  [key: string]: unknown;
}

export interface MeshResponse {
  status: number;
  headers: HeaderMap;
  body: Readable | null;
  /** Trailers, available once the body has ended (gRPC status lives here). */
  trailers?: () => HeaderMap | undefined;
}

export type Next = (req: MeshRequest) => Promise<MeshResponse>;

/** One feature of the request path. A filter may answer by itself, or call next (possibly more than once). */
export interface HttpFilter {
  readonly name: string;
  handle(req: MeshRequest, next: Next): Promise<MeshResponse>;
}
