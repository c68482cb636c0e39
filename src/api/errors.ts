/**
 * The one error catalogue. Every response the proxy (or control plane) generates itself
 * carries one of these codes; HTTP and gRPC statuses are mapped here and nowhere else.
 */
export const ERROR_CATALOGUE = {
  NO_ROUTE: { http: 404, grpc: 12 /* UNIMPLEMENTED */, message: 'no route matches the request' },
  NO_HEALTHY_UPSTREAM: { http: 503, grpc: 14 /* UNAVAILABLE */, message: 'no healthy upstream instance' },
  UPSTREAM_CONNECT_FAILED: { http: 503, grpc: 14, message: 'could not connect to the upstream' },
  UPSTREAM_RESET: { http: 502, grpc: 14, message: 'the upstream reset the connection or stream' },
  UPSTREAM_TIMEOUT: { http: 504, grpc: 4 /* DEADLINE_EXCEEDED */, message: 'the upstream did not answer in time' },
  CIRCUIT_OPEN: { http: 503, grpc: 14, message: 'the circuit breaker is open' },
  RATE_LIMITED: { http: 429, grpc: 8 /* RESOURCE_EXHAUSTED */, message: 'rate limit exceeded' },
  FORBIDDEN: { http: 403, grpc: 7 /* PERMISSION_DENIED */, message: 'denied by authorization policy' },
  UNAUTHENTICATED: { http: 401, grpc: 16 /* UNAUTHENTICATED */, message: 'authentication failed' },
  FAULT_INJECTED: { http: 503, grpc: 14, message: 'fault injected by route configuration' },
  BAD_REQUEST: { http: 400, grpc: 3 /* INVALID_ARGUMENT */, message: 'malformed request' },
  REQUEST_TOO_LARGE: { http: 413, grpc: 8, message: 'request too large' },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export const ERROR_HEADER = 'x-trellis-error';

/** An error the mesh answers itself. `status` overrides the catalogue (FAULT_INJECTED, 431 vs 413). */
export class MeshError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;
  /** The upstream provably did not process the request (refused stream, GOAWAY): safe to send elsewhere. */
  readonly refused: boolean;
  constructor(code: ErrorCode, message?: string, opts: { status?: number; headers?: Record<string, string>; refused?: boolean } = {}) {
    super(message ?? ERROR_CATALOGUE[code].message);
    this.name = 'MeshError';
    this.code = code;
    this.status = opts.status ?? ERROR_CATALOGUE[code].http;
    this.headers = opts.headers ?? {};
    this.refused = opts.refused ?? false;
  }
}

export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CATALOGUE[code].http;
}

/** gRPC status for a code; FAULT_INJECTED maps from the injected HTTP status like other HTTP errors. */
export function grpcStatusOf(code: ErrorCode, httpStatus?: number): number {
  if (code === 'FAULT_INJECTED' && httpStatus !== undefined) return grpcStatusForHttp(httpStatus);
  return ERROR_CATALOGUE[code].grpc;
}

/** The gRPC spec's HTTP→gRPC status mapping, for injected statuses. */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400: return 13;
    case 401: return 16;
    case 403: return 7;
    case 404: return 12;
    case 429: case 502: case 503: case 504: return 14;
    default: return 2;
  }
}

export function errorBody(err: MeshError): string {
  return JSON.stringify({ error: err.code, message: err.message });
}

export function toMeshError(err: unknown): MeshError {
  if (err instanceof MeshError) return err;
  return new MeshError('UPSTREAM_RESET', err instanceof Error ? err.message : String(err));
}
