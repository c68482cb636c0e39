/**
 * The typed TypeScript client of the control plane's REST API. The CLI and the dashboard use it:
 * it is the one way to talk to the API (`import { TrellisClient } from 'trellis'`).
 */
import type { Kind, Resource } from '../api/schema/resources.js';
import type {
  ApplyResponse, ApplyResult, DeleteResponse, DenialsResponse, ErrorBody, EventStreamMessage, HealthResponse, Overview, ProxiesResponse, ResourceList,
  ServiceDescription, ServiceSummary, StatsResponse, StatusResponse, TapStreamMessage, TokenResponse,
} from '../control-plane/contract.js';
import type { DenialEvent, TapEvent, TapFilter } from '../api/schema/tap.js';
import type { RolloutList, RolloutStatus } from '../api/schema/rollout.js';
import { readSse } from './sse.js';
import { resolveKind } from '../control-plane/core/kinds.js';

export type {
  ApplyResponse, ApplyResult, DeleteResponse, ErrorBody, HealthResponse, ProxiesResponse, ResourceList,
  ServiceDescription, ServiceSummary, StatsResponse, StatusResponse, TokenResponse, TapStreamMessage, DenialsResponse,
  DenialEvent, TapEvent, TapFilter, Overview, EventStreamMessage,
};
export type { InstanceView, ProxyState, NackInfo, ApplyAction, StatsRowView, ServicePoint, OverviewHistoryPoint } from '../control-plane/contract.js';
export type { Kind, Resource };
export type { RolloutStatus, RolloutList };
export type { RolloutAnalysis, RolloutEvent, RolloutPhase } from '../api/schema/rollout.js';
export { resolveKind };

export const DEFAULT_API_URL = 'http://127.0.0.1:15000';

export interface TrellisClientOptions {
  /** Base URL of the REST API (default $TRELLIS_API or http://127.0.0.1:15000). "HOST:PORT" is accepted. */
  baseUrl?: string;
  /** Admin token, needed when the API is not on loopback (default $TRELLIS_ADMIN_TOKEN). */
  token?: string;
  /** Per-request timeout in ms (default 30s). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** An error answered by the API (or status 0 / UNREACHABLE when it could not be reached). */
export class TrellisApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly errors: { path: string; message: string }[];
  constructor(status: number, code: string, message: string, errors: { path: string; message: string }[] = []) {
    super(message);
    this.name = 'TrellisApiError';
    this.status = status;
    this.code = code;
    this.errors = errors;
  }
}

function normalizeBaseUrl(url: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
  return withScheme.replace(/\/+$/, '');
}

/** An environment variable in Node; undefined in a browser (no `process` there, and no Node types needed). */
function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name] || undefined;
}

export class TrellisClient {
  readonly baseUrl: string;
  private readonly token?: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(opts: TrellisClientOptions = {}) {
    this.baseUrl = normalizeBaseUrl(opts.baseUrl ?? env('TRELLIS_API') ?? DEFAULT_API_URL);
    const token = opts.token ?? env('TRELLIS_ADMIN_TOKEN');
    if (token) this.token = token;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Validates and applies resources atomically; with dryRun, reports what would change. */
  async apply(resources: unknown[], opts: { dryRun?: boolean } = {}): Promise<ApplyResponse> {
    return this.request<ApplyResponse>('POST', '/api/v1/apply', { resources, dryRun: opts.dryRun ?? false });
  }

  /** Resources of a kind (kind is case-insensitive, plural accepted). */
  async list(kind: Kind | string): Promise<Resource[]> {
    return (await this.request<ResourceList>('GET', `/api/v1/resources/${enc(kindOf(kind))}`)).items;
  }

  async get(kind: Kind | string, name: string): Promise<Resource> {
    return this.request<Resource>('GET', `/api/v1/resources/${enc(kindOf(kind))}/${enc(name)}`);
  }

  async delete(kind: Kind | string, name: string): Promise<DeleteResponse> {
    return this.request<DeleteResponse>('DELETE', `/api/v1/resources/${enc(kindOf(kind))}/${enc(name)}`);
  }

  /** Every service: Service resources and services registered by proxies. */
  async services(): Promise<ServiceSummary[]> {
    return this.request<ServiceSummary[]>('GET', '/api/v1/services');
  }

  async describeService(name: string): Promise<ServiceDescription> {
    return this.request<ServiceDescription>('GET', `/api/v1/services/${enc(name)}`);
  }

  /** A join token for `service` (ttl such as "1h"; default 24h). */
  async createToken(service: string, ttl?: string): Promise<TokenResponse> {
    return this.request<TokenResponse>('POST', '/api/v1/tokens', { service, ...(ttl ? { ttl } : {}) });
  }

  async proxies(): Promise<ProxiesResponse> {
    return this.request<ProxiesResponse>('GET', '/api/v1/proxies');
  }

  /**
   * Golden metrics gathered from the proxies: per service (default; the destination's inbound view),
   * per route (callers' outbound view) or per edge, over `window` (default 1m, at most 15m).
   */
  async stats(opts: { service?: string; window?: string; by?: 'service' | 'route' | 'edge' } = {}): Promise<StatsResponse> {
    const q = new URLSearchParams();
    if (opts.service) q.set('service', opts.service);
    if (opts.window) q.set('window', opts.window);
    if (opts.by) q.set('by', opts.by);
    const qs = q.toString();
    return this.request<StatsResponse>('GET', `/api/v1/stats${qs ? `?${qs}` : ''}`);
  }

  /** The most recent authorization denials (newest first), optionally only those with `service` as destination. */
  async denials(opts: { service?: string } = {}): Promise<DenialEvent[]> {
    const qs = opts.service ? `?service=${enc(opts.service)}` : '';
    return (await this.request<DenialsResponse>('GET', `/api/v1/denials${qs}`)).denials;
  }

  /** The status of every Rollout (phase, step, canary weight, last analysis, history). */
  async rollouts(): Promise<RolloutStatus[]> {
    return (await this.request<RolloutList>('GET', '/api/v1/rollouts')).rollouts;
  }

  /** The status of the Rollout of `service` (404 NOT_FOUND when there is none). */
  async rolloutStatus(service: string): Promise<RolloutStatus> {
    return this.request<RolloutStatus>('GET', `/api/v1/rollouts/${enc(service)}`);
  }

  /** Skips the remaining steps: the canary gets 100% (Succeeded); 409 CONFLICT when no canary instance is ready. */
  async promoteRollout(service: string): Promise<RolloutStatus> {
    return this.request<RolloutStatus>('POST', `/api/v1/rollouts/${enc(service)}/promote`);
  }

  /** Stops the rollout: the canary gets 0% (Aborted) until the Rollout changes or is deleted. */
  async abortRollout(service: string): Promise<RolloutStatus> {
    return this.request<RolloutStatus>('POST', `/api/v1/rollouts/${enc(service)}/abort`);
  }

  /**
   * Live requests of every instance of `filter.service` (GET /api/v1/tap, Server-Sent Events), until `signal`
   * aborts or the control plane ends the stream. Bounded at every hop: a slow reader loses events (reported in
   * `status` messages as `dropped`), it never slows the traffic.
   */
  async *tap(filter: TapFilter, opts: { signal?: AbortSignal } = {}): AsyncGenerator<TapStreamMessage> {
    const q = new URLSearchParams({ service: filter.service });
    if (filter.path) q.set('path', filter.path);
    if (filter.method) q.set('method', filter.method);
    const res = await this.open('GET', `/api/v1/tap?${q.toString()}`, { accept: 'text/event-stream' }, undefined, opts.signal);
    if (!res.ok) throw await apiError(res, 'GET', '/api/v1/tap');
    if (!res.body) return;
    for await (const msg of readSse(res.body)) {
      if (msg.event !== 'tap' && msg.event !== 'status') continue;
      yield JSON.parse(msg.data) as TapStreamMessage;
    }
  }

  /**
   * What the dashboard shows, at once: services, golden metrics by service / edge / route over `window` (default 30s,
   * 5s..15m), routes and splits, authorization policies and recent denials, proxies. `history` (e.g. "5m") adds
   * per-service points every 10 s.
   */
  async overview(opts: { window?: string; history?: string } = {}): Promise<Overview> {
    const q = new URLSearchParams();
    if (opts.window) q.set('window', opts.window);
    if (opts.history) q.set('history', opts.history);
    const qs = q.toString();
    return this.request<Overview>('GET', `/api/v1/overview${qs ? `?${qs}` : ''}`);
  }

  /**
   * The dashboard's live feed (GET /api/v1/events, Server-Sent Events): an Overview now (with `history`, default 5m)
   * and every ~2 s, until `signal` aborts or the control plane ends the stream. A slow reader misses overviews rather
   * than making the server buffer them.
   */
  async *events(opts: { window?: string; history?: string; signal?: AbortSignal } = {}): AsyncGenerator<EventStreamMessage> {
    const q = new URLSearchParams();
    if (opts.window) q.set('window', opts.window);
    if (opts.history) q.set('history', opts.history);
    const qs = q.toString();
    const path = `/api/v1/events${qs ? `?${qs}` : ''}`;
    const res = await this.open('GET', path, { accept: 'text/event-stream' }, undefined, opts.signal);
    if (!res.ok) throw await apiError(res, 'GET', path);
    if (!res.body) return;
    for await (const msg of readSse(res.body)) {
      if (msg.event !== 'overview') continue;
      yield JSON.parse(msg.data) as EventStreamMessage;
    }
  }

  /**
   * The control plane's clock, from the Date header of GET /healthz, with the local time the
   * request was sent and answered (ms) so callers can bound the skew.
   */
  async serverTime(): Promise<{ serverDate: Date | undefined; sentAt: number; receivedAt: number }> {
    const sentAt = Date.now();
    let res: Response;
    try {
      res = await this.fetchImpl(this.baseUrl + '/healthz', { headers: this.token ? { authorization: `Bearer ${this.token}` } : {}, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new TrellisApiError(0, 'UNREACHABLE', `cannot reach the control plane API at ${this.baseUrl}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    const receivedAt = Date.now();
    await res.text();
    const header = res.headers.get('date');
    const parsed = header ? new Date(header) : undefined;
    return { serverDate: parsed && !Number.isNaN(parsed.getTime()) ? parsed : undefined, sentAt, receivedAt };
  }

  async status(): Promise<StatusResponse> {
    return this.request<StatusResponse>('GET', '/api/v1/status');
  }

  async health(): Promise<HealthResponse> {
    return this.request<HealthResponse>('GET', '/healthz');
  }

  async ready(): Promise<HealthResponse> {
    return this.request<HealthResponse>('GET', '/readyz');
  }

  async openApi(): Promise<Record<string, unknown>> {
    return this.request<Record<string, unknown>>('GET', '/api/openapi.json');
  }

  async metrics(): Promise<string> {
    return this.request<string>('GET', '/metrics', undefined, 'text');
  }

  private async request<T>(method: string, path: string, body?: unknown, as: 'json' | 'text' = 'json'): Promise<T> {
    const headers: Record<string, string> = { accept: as === 'json' ? 'application/json' : 'text/plain' };
    const res = await this.open(method, path, headers, body, AbortSignal.timeout(this.timeoutMs));
    if (!res.ok) throw await apiError(res, method, path);
    const text = await res.text();
    if (as === 'text') return text as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new TrellisApiError(res.status, 'BAD_RESPONSE', `the API answered ${method} ${path} with non-JSON`);
    }
  }

  /** Sends one request (admin token attached); an unreachable API becomes TrellisApiError UNREACHABLE. */
  private async open(method: string, path: string, headers: Record<string, string>, body: unknown, signal: AbortSignal | undefined): Promise<Response> {
    const h: Record<string, string> = { ...headers };
    if (body !== undefined) h['content-type'] = 'application/json';
    if (this.token) h.authorization = `Bearer ${this.token}`;
    try {
      return await this.fetchImpl(this.baseUrl + path, {
        method,
        headers: h,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (signal?.aborted && (err as Error).name === 'AbortError') throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const reason = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new TrellisApiError(0, 'UNREACHABLE', `cannot reach the control plane API at ${this.baseUrl}: ${reason}`);
    }
  }
}

/** The API's JSON error body as a TrellisApiError. */
async function apiError(res: Response, method: string, path: string): Promise<TrellisApiError> {
  const text = await res.text();
  let parsed: Partial<ErrorBody> | undefined;
  try { parsed = JSON.parse(text) as Partial<ErrorBody>; } catch { /* not JSON */ }
  return new TrellisApiError(
    res.status,
    typeof parsed?.error === 'string' ? parsed.error : `HTTP_${res.status}`,
    typeof parsed?.message === 'string' ? parsed.message : text || res.statusText || `${method} ${path} failed`,
    Array.isArray(parsed?.errors) ? parsed.errors : [],
  );
}

function kindOf(kind: string): string {
  return resolveKind(kind) ?? kind;
}

function enc(s: string): string {
  return encodeURIComponent(s);
}
