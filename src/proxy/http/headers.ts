/**
 * Header hygiene, in one place: hop-by-hop removal (RFC 9110 §7.6.1, including headers named in
 * Connection), pseudo-header handling, and removal of mesh-reserved headers a client sent.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderMap } from '../pipeline/types.js';

/** Fields that describe one hop's connection and never travel further (plus Host, set per hop). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer',
  'proxy-authenticate', 'proxy-authorization', 'http2-settings', 'host',
]);

/** Copies request/response headers without hop-by-hop ones and without pseudo-headers. */
export function endToEndHeaders(input: IncomingHttpHeaders | Record<string, unknown>): HeaderMap {
  const out: HeaderMap = {};
  const connection = input['connection'];
  let named: Set<string> | undefined;
  if (typeof connection === 'string' && connection.length > 0) {
    named = new Set(connection.toLowerCase().split(',').map((s) => s.trim()).filter(Boolean));
  }
  for (const name in input) {
    const value = input[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out[name] = value as string | string[];
  }
  // "te: trailers" is the one TE value HTTP/2 allows and gRPC needs end to end.
  const te = input['te'];
  if (typeof te === 'string' && te.toLowerCase().includes('trailers')) out['te'] = 'trailers';
  return out;
}

/** Removes every x-trellis-* header and x-forwarded-client-cert: only the mesh may set those. */
export function stripMeshHeaders(headers: HeaderMap): void {
  for (const name in headers) {
    if (name.startsWith('x-trellis-') || name === 'x-forwarded-client-cert') delete headers[name];
  }
}

export function headerValue(headers: HeaderMap, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function isGrpcContentType(contentType: string | string[] | undefined): boolean {
  const v = Array.isArray(contentType) ? contentType[0] : contentType;
  return typeof v === 'string' && v.startsWith('application/grpc');
}
