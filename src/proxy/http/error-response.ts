/**
 * The one place a MeshError becomes a response: `x-trellis-error: CODE` plus a JSON body for HTTP,
 * or a trailers-only gRPC response with the matching grpc-status and the code in grpc-message.
 */
import { Readable } from 'node:stream';
import { ERROR_HEADER, MeshError, errorBody, grpcStatusOf } from '../../api/errors.js';
import type { MeshResponse } from '../pipeline/types.js';

/**
 * grpc-message as the gRPC HTTP/2 protocol spells it: UTF-8, with every byte outside printable ASCII
 * (0x20-0x7E) and '%' itself written %XX; everything else as is. (encodeURIComponent would also encode
 * ' ', ':', '"', ... which clients that decode only what the spec encodes, like grpc-js, show as "%3A".)
 */
export function grpcPercentEncode(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function errorResponse(err: MeshError, grpc: boolean): MeshResponse {
  if (grpc) {
    return {
      status: 200,
      headers: {
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatusOf(err.code, err.status)),
        'grpc-message': grpcPercentEncode(`${err.code}: ${err.message}`),
        [ERROR_HEADER]: err.code,
        ...err.headers,
      },
      body: null,
    };
  }
  const body = errorBody(err);
  return {
    status: err.status,
    headers: {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      [ERROR_HEADER]: err.code,
      ...err.headers,
    },
    body: Readable.from([Buffer.from(body)]),
  };
}
