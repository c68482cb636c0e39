/**
 * The one place a MeshError becomes a response: `x-trellis-error: CODE` plus a JSON body for HTTP,
 * or a trailers-only gRPC response with the matching grpc-status and the code in grpc-message.
 */
import { Readable } from 'node:stream';
import { ERROR_HEADER, MeshError, errorBody, grpcStatusOf } from '../../api/errors.js';
import type { MeshResponse } from '../pipeline/types.js';

export function errorResponse(err: MeshError, grpc: boolean): MeshResponse {
  if (grpc) {
    return {
      status: 200,
      headers: {
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatusOf(err.code, err.status)),
        'grpc-message': encodeURIComponent(`${err.code}: ${err.message}`),
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
