/**
 * The REST API (--api): resources, tokens, services, proxies, golden-metrics stats, rollouts, live tap (Server-Sent Events,
 * tap-stream.ts), recent denials, the dashboard's overview and its live feed (events-stream.ts); plus /healthz,
 * /readyz, /metrics, /api/openapi.json, and the built web dashboard at / (static-files.ts). JSON errors everywhere: {"error": CODE, "message": ..., "errors"?: [{path, message}]}.
 * On a non-loopback address every /api/ route requires `Authorization: Bearer <admin token>`.
 */
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { isDuration, parseDuration } from '../../../api/duration.js';
import { Name } from '../../../api/schema/common.js';
import { ValidationError } from '../../../api/schema/validate.js';
import { boundAddress, isLoopbackHost } from '../../../shared/address.js';
import type { Logger } from '../../../shared/log.js';
import {
  ApplyRequest, TokenRequest,
  type ApplyResponse, type DeleteResponse, type DenialsResponse, type ErrorBody, type Overview, type ResourceList, type StatsResponse, type StatusResponse, type TokenResponse,
} from '../../contract.js';
import { DEFAULT_HISTORY_MS, DEFAULT_OVERVIEW_WINDOW, OVERVIEW_MAX_WINDOW_MS, OVERVIEW_MIN_WINDOW_MS, type OverviewService } from '../../core/overview.js';
import { EventStreams, TooManyStreamsError, type EventStreamOptions } from './events-stream.js';
import { MISSING_BUNDLE_MESSAGE, StaticFiles } from './static-files.js';
import { STATS_BY, type GoldenMetrics, type StatsBy } from '../../core/golden-metrics.js';
import { RESERVED_SERVICES } from '../../core/identity.js';
import { resolveKind } from '../../core/kinds.js';
import type { MeshQueries } from '../../core/queries.js';
import { issuesToFieldErrors, type ResourceService } from '../../core/resource-service.js';
import type { TokenService } from '../../core/tokens.js';
import { buildOpenApiDocument } from './openapi.js';
import { TooManyTapsError, type TapService } from '../../core/taps.js';
import type { DenialLog } from '../../core/denials.js';
import { SseTapClient, type TapStreamOptions } from './tap-stream.js';
import { RolloutActionError, type RolloutController } from '../../core/rollouts.js';
import type { RolloutList, RolloutStatus } from '../../../api/schema/rollout.js';

export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface ApiServerDeps {
  resources: ResourceService;
  tokens: TokenService;
  queries: MeshQueries;
  metrics: { contentType: string; text(): Promise<string> };
  status: () => StatusResponse;
  ready: () => boolean;
  adminToken: string;
  log: Logger;
  /** Golden metrics from the proxies' stats messages (GET /api/v1/stats). */
  stats?: GoldenMetrics;
  /** Live tap sessions (GET /api/v1/tap). */
  taps?: TapService;
  tapStream?: TapStreamOptions;
  /** Recent authorization denials (GET /api/v1/denials). */
  denials?: DenialLog;
  /** The dashboard's view model (GET /api/v1/overview, GET /api/v1/events). */
  overview?: OverviewService;
  events?: EventStreamOptions;
  /** The built dashboard served at / (absent: / answers how to build it). */
  dashboardDir?: string;
  /** Rollout statuses and actions (GET /api/v1/rollouts[/SERVICE], POST .../promote, .../abort). */
  rollouts?: RolloutController;
  now?: () => number;
}

/** The API must be protected by the admin token unless it listens on loopback only. */
export function requiresAdminToken(bindHost: string): boolean {
  return !isLoopbackHost(bindHost);
}

/** Whether an Authorization header carries the admin token (constant-time comparison). */
export function isAuthorized(authorization: string | undefined, adminToken: string): boolean {
  if (!authorization || !adminToken) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!m) return false;
  const given = Buffer.from(m[1]!);
  const expected = Buffer.from(adminToken);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly errors?: { path: string; message: string }[]) {
    super(message);
  }
}

type Handler = (req: http.IncomingMessage, params: string[]) => Promise<{ status?: number; body: unknown }>;

interface Route { method: string; pattern: RegExp; handler: Handler }

export class ApiServer {
  private readonly deps: ApiServerDeps;
  private server?: http.Server;
  private authRequired = false;
  private readonly routes: Route[];
  private openapi?: string;
  private readonly eventStreams: EventStreams;
  private readonly staticFiles?: StaticFiles;

  constructor(deps: ApiServerDeps) {
    this.deps = deps;
    this.eventStreams = new EventStreams(deps.events);
    if (deps.dashboardDir) this.staticFiles = new StaticFiles(deps.dashboardDir);
    const r = (method: string, pattern: RegExp, handler: Handler): Route => ({ method, pattern, handler });
    this.routes = [
      r('GET', /^\/api\/openapi\.json$/, async () => ({ body: this.openApi() })),
      r('GET', /^\/api\/v1\/status$/, async () => ({ body: this.deps.status() })),
      r('POST', /^\/api\/v1\/apply$/, (req) => this.apply(req)),
      r('GET', /^\/api\/v1\/resources\/([^/]+)$/, (_req, [kind]) => this.list(kind!)),
      r('GET', /^\/api\/v1\/resources\/([^/]+)\/([^/]+)$/, (_req, [kind, name]) => this.getResource(kind!, name!)),
      r('DELETE', /^\/api\/v1\/resources\/([^/]+)\/([^/]+)$/, (_req, [kind, name]) => this.deleteResource(kind!, name!)),
      r('POST', /^\/api\/v1\/tokens$/, (req) => this.createToken(req)),
      r('GET', /^\/api\/v1\/services$/, async () => ({ body: await this.deps.queries.services() })),
      r('GET', /^\/api\/v1\/services\/([^/]+)$/, (_req, [name]) => this.describeService(name!)),
      r('GET', /^\/api\/v1\/proxies$/, async () => ({ body: this.deps.queries.proxyStates() })),
      r('GET', /^\/api\/v1\/stats$/, async (req) => ({ body: this.stats(req) })),
      r('GET', /^\/api\/v1\/denials$/, async (req) => ({ body: this.denials(req) })),
      r('GET', /^\/api\/v1\/overview$/, async (req) => ({ body: await this.overview(req) })),
      r('GET', /^\/api\/v1\/rollouts$/, async () => ({ body: { rollouts: this.rolloutController().list() } satisfies RolloutList })),
      r('GET', /^\/api\/v1\/rollouts\/([^/]+)$/, async (_req, [service]) => ({ body: this.rolloutStatus(service!) })),
      r('POST', /^\/api\/v1\/rollouts\/([^/]+)\/promote$/, async (_req, [service]) => ({ body: await this.rolloutController().promote(service!) })),
      r('POST', /^\/api\/v1\/rollouts\/([^/]+)\/abort$/, async (_req, [service]) => ({ body: await this.rolloutController().abort(service!) })),
    ];
  }

  async listen(host: string, port: number): Promise<string> {
    this.authRequired = requiresAdminToken(host);
    const server = http.createServer((req, res) => { void this.handle(req, res); });
    server.requestTimeout = 60_000;
    server.headersTimeout = 30_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    return boundAddress(server.address());
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.eventStreams.closeAll();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setImmediate(() => server.closeAllConnections());
    });
  }

  private openApi(): unknown {
    this.openapi ??= JSON.stringify(buildOpenApiDocument());
    return JSON.parse(this.openapi);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    try {
      if (path === '/healthz' && method === 'GET') return send(res, 200, { status: 'ok' });
      if (path === '/readyz' && method === 'GET') {
        const ready = this.deps.ready();
        return send(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready' });
      }
      if (path === '/metrics' && method === 'GET') {
        const text = await this.deps.metrics.text();
        res.writeHead(200, { 'content-type': this.deps.metrics.contentType });
        res.end(text);
        return;
      }
      if (!path.startsWith('/api/')) {
        if (this.staticFiles) return await this.staticFiles.handle(req, res, rawPathname(req.url));
        if (path === '/' && (method === 'GET' || method === 'HEAD')) {
          res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(MISSING_BUNDLE_MESSAGE);
          return;
        }
      }
      if (path.startsWith('/api/')) {
        if (this.authRequired && !isAuthorized(req.headers.authorization, this.deps.adminToken)) {
          throw new HttpError(401, 'UNAUTHENTICATED', 'this API is not on loopback: send Authorization: Bearer <admin token> (file admin-token in the data dir; $TRELLIS_ADMIN_TOKEN for the CLI)');
        }
        if (path === '/api/v1/tap') {
          if (method !== 'GET') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
          return this.tap(url, res);
        }
        if (path === '/api/v1/events') {
          if (method !== 'GET') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
          return this.events(url, res);
        }
        let pathMatched = false;
        for (const route of this.routes) {
          const m = route.pattern.exec(path);
          if (!m) continue;
          pathMatched = true;
          if (route.method !== method) continue;
          let params: string[];
          try {
            params = m.slice(1).map((p) => decodeURIComponent(p));
          } catch {
            throw new HttpError(400, 'BAD_REQUEST', `malformed path ${path}`);
          }
          const out = await route.handler(req, params);
          return send(res, out.status ?? 200, out.body);
        }
        if (pathMatched) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
      }
      throw new HttpError(404, 'NOT_FOUND', `no route ${method} ${path}`);
    } catch (err) {
      if (err instanceof HttpError) {
        const body: ErrorBody = { error: err.code, message: err.message, ...(err.errors ? { errors: err.errors } : {}) };
        if (err.status === 413) res.setHeader('connection', 'close');
        return send(res, err.status, body);
      }
      if (err instanceof RolloutActionError) return send(res, err.status, { error: err.code, message: err.message } satisfies ErrorBody);
      if (err instanceof TooManyTapsError || err instanceof TooManyStreamsError) return send(res, 429, { error: err.code, message: err.message } satisfies ErrorBody);
      if (err instanceof ValidationError) {
        return send(res, 400, { error: 'INVALID', message: err.message, errors: err.errors } satisfies ErrorBody);
      }
      this.deps.log.error('api request failed', { method, path, error: (err as Error).message });
      return send(res, 500, { error: 'INTERNAL', message: (err as Error).message } satisfies ErrorBody);
    }
  }

  // ---------------------------------------------------------------- handlers
  private async apply(req: http.IncomingMessage): Promise<{ body: ApplyResponse }> {
    const parsed = ApplyRequest.safeParse(await readJson(req));
    if (!parsed.success) throw new ValidationError(issuesToFieldErrors(parsed.error.issues));
    const dryRun = parsed.data.dryRun ?? false;
    const results = await this.deps.resources.apply(parsed.data.resources, { dryRun });
    return { body: { dryRun, results } };
  }

  private kind(input: string) {
    const kind = resolveKind(input);
    if (!kind) throw new HttpError(404, 'UNKNOWN_KIND', `unknown kind "${input}"`);
    return kind;
  }

  private async list(kindInput: string): Promise<{ body: ResourceList }> {
    const kind = this.kind(kindInput);
    return { body: { kind, items: await this.deps.resources.list(kind) } };
  }

  private async getResource(kindInput: string, name: string): Promise<{ body: unknown }> {
    const kind = this.kind(kindInput);
    const r = await this.deps.resources.get(kind, name);
    if (!r) throw new HttpError(404, 'NOT_FOUND', `${kind} "${name}" not found`);
    return { body: r };
  }

  private async deleteResource(kindInput: string, name: string): Promise<{ body: DeleteResponse }> {
    const kind = this.kind(kindInput);
    if (!(await this.deps.resources.delete(kind, name))) throw new HttpError(404, 'NOT_FOUND', `${kind} "${name}" not found`);
    return { body: { kind, name, deleted: true } };
  }

  private async createToken(req: http.IncomingMessage): Promise<{ body: TokenResponse }> {
    const parsed = TokenRequest.safeParse(await readJson(req));
    if (!parsed.success) throw new ValidationError(issuesToFieldErrors(parsed.error.issues));
    const errors: { path: string; message: string }[] = [];
    const name = Name.safeParse(parsed.data.service);
    if (!name.success) errors.push(...issuesToFieldErrors(name.error.issues, ['service']));
    else if (RESERVED_SERVICES.has(parsed.data.service)) errors.push({ path: 'service', message: `"${parsed.data.service}" is reserved` });
    if (parsed.data.ttl !== undefined && !isDuration(parsed.data.ttl)) {
      errors.push({ path: 'ttl', message: 'must be a duration such as 250ms, 2s, 1m, 24h' });
    }
    if (errors.length > 0) throw new ValidationError(errors);
    const issued = await this.deps.tokens.create(parsed.data.service, parsed.data.ttl);
    return { body: { token: issued.token, expiresAt: issued.expiresAt.toISOString() } };
  }

  /** GET /api/v1/stats?service=&window=1m&by=service|route|edge */
  private stats(req: http.IncomingMessage): StatsResponse {
    const q = new URL(req.url ?? '/', 'http://localhost').searchParams;
    const window = q.get('window') ?? '1m';
    const byInput = q.get('by') ?? 'service';
    const service = q.get('service') || undefined;
    const errors: { path: string; message: string }[] = [];
    let windowMs = 0;
    if (!isDuration(window)) errors.push({ path: 'window', message: 'must be a duration such as 10s, 1m, 15m' });
    else {
      windowMs = parseDuration(window);
      if (windowMs < 1000 || windowMs > 15 * 60_000) errors.push({ path: 'window', message: 'must be between 1s and 15m (the retention)' });
    }
    if (!(STATS_BY as readonly string[]).includes(byInput)) errors.push({ path: 'by', message: 'must be service, route or edge' });
    if (errors.length > 0) throw new ValidationError(errors);
    const by = byInput as StatsBy;
    const now = (this.deps.now ?? Date.now)();
    const result = this.deps.stats?.query({ by, windowMs, now, ...(service !== undefined ? { service } : {}) }) ?? { rows: [], dropped: 0, coveredMs: windowMs };
    return {
      by, window, windowMs, coveredMs: Math.round(result.coveredMs), ...(service !== undefined ? { service } : {}),
      at: new Date(now).toISOString(), rows: result.rows, dropped: result.dropped,
    };
  }

  /** GET /api/v1/denials[?service=S]: newest first. */
  private denials(req: http.IncomingMessage): DenialsResponse {
    const service = new URL(req.url ?? '/', 'http://localhost').searchParams.get('service') || undefined;
    return { denials: this.deps.denials?.list(service) ?? [] };
  }

  /** ?window= (default 30s, 5s..15m) and ?history= (0 or a duration up to 15m) of the overview endpoints. */
  private overviewQuery(q: URLSearchParams, defaultHistory: string): { window: string; windowMs: number; historyMs: number } {
    const window = q.get('window') ?? DEFAULT_OVERVIEW_WINDOW;
    const history = q.get('history') ?? defaultHistory;
    const errors: { path: string; message: string }[] = [];
    let windowMs = 0;
    let historyMs = 0;
    if (!isDuration(window)) errors.push({ path: 'window', message: 'must be a duration such as 10s, 30s, 1m' });
    else {
      windowMs = parseDuration(window);
      if (windowMs < OVERVIEW_MIN_WINDOW_MS || windowMs > OVERVIEW_MAX_WINDOW_MS) errors.push({ path: 'window', message: 'must be between 5s and 15m' });
    }
    if (history !== '0') {
      if (!isDuration(history)) errors.push({ path: 'history', message: 'must be 0 or a duration such as 5m' });
      else {
        historyMs = parseDuration(history);
        if (historyMs > 15 * 60_000) errors.push({ path: 'history', message: 'must be at most 15m (the retention)' });
      }
    }
    if (errors.length > 0) throw new ValidationError(errors);
    return { window, windowMs, historyMs };
  }

  private overviewService(): OverviewService {
    if (!this.deps.overview) throw new HttpError(404, 'NOT_FOUND', 'the overview is not available on this control plane');
    return this.deps.overview;
  }

  /** GET /api/v1/overview[?window=30s][&history=0]: one Overview. */
  private async overview(req: http.IncomingMessage): Promise<Overview> {
    const service = this.overviewService();
    const q = this.overviewQuery(new URL(req.url ?? '/', 'http://localhost').searchParams, '0');
    const now = (this.deps.now ?? Date.now)();
    return service.build({ window: q.window, windowMs: q.windowMs, now, ...(q.historyMs > 0 ? { historyMs: q.historyMs } : {}) });
  }

  /** GET /api/v1/events[?window=30s][&history=5m]: an Overview now (with history) and every ~2 s, as Server-Sent Events. */
  private events(url: URL, res: http.ServerResponse): void {
    const service = this.overviewService();
    const q = this.overviewQuery(url.searchParams, `${DEFAULT_HISTORY_MS / 60_000}m`);
    const now = this.deps.now ?? Date.now;
    this.eventStreams.start(
      res,
      (first) => service.build({ window: q.window, windowMs: q.windowMs, now: now(), ...(first && q.historyMs > 0 ? { historyMs: q.historyMs } : {}) }),
      (err) => this.deps.log.warn('overview failed', { error: err.message }),
    );
  }

  /** GET /api/v1/tap?service=S[&path=P][&method=M]: Server-Sent Events until the client leaves. */
  private tap(url: URL, res: http.ServerResponse): void {
    const taps = this.deps.taps;
    if (!taps) throw new HttpError(404, 'NOT_FOUND', 'live tap is not available on this control plane');
    const q = url.searchParams;
    const filter: Record<string, string | undefined> = { service: q.get('service') ?? undefined };
    if (q.has('path')) filter.path = q.get('path')!;
    if (q.has('method')) filter.method = q.get('method')!;
    SseTapClient.open(taps, filter, res, this.deps.tapStream);
  }

  private rolloutController(): RolloutController {
    if (!this.deps.rollouts) throw new HttpError(404, 'NOT_FOUND', 'rollouts are not available on this control plane');
    return this.deps.rollouts;
  }

  private rolloutStatus(service: string): RolloutStatus {
    const status = this.rolloutController().statusOf(service);
    if (!status) throw new HttpError(404, 'NOT_FOUND', `no Rollout for service ${service}`);
    return status;
  }

  private async describeService(name: string): Promise<{ body: unknown }> {
    const d = await this.deps.queries.describeService(name);
    if (!d) throw new HttpError(404, 'NOT_FOUND', `service "${name}" not found (neither a Service resource nor registered)`);
    return { body: d };
  }
}

/** The request target's path as sent (still percent-encoded, not dot-normalised), for the static files' own checks. */
function rawPathname(target: string | undefined): string {
  const t = target ?? '/';
  if (t.startsWith('/')) {
    const end = t.search(/[?#]/);
    return end < 0 ? t : t.slice(0, end);
  }
  try { return new URL(t).pathname; } catch { return '/'; }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) { res.end(); return; }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const tooLarge = () => new HttpError(413, 'REQUEST_TOO_LARGE', `body larger than ${MAX_BODY_BYTES} bytes`);
  const declared = Number(req.headers['content-length']);
  const chunks = await new Promise<Buffer[]>((resolve, reject) => {
    const out: Buffer[] = [];
    let size = 0;
    let over = Number.isFinite(declared) && declared > MAX_BODY_BYTES;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) over = true;
      // Past the limit the body is discarded (so the client can read the 413); far past it, the connection is cut.
      if (size > MAX_BODY_BYTES * 4) { req.destroy(); reject(tooLarge()); return; }
      if (!over) out.push(chunk);
    });
    req.once('end', () => (over ? reject(tooLarge()) : resolve(out)));
    req.once('error', reject);
  });
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) throw new HttpError(400, 'BAD_REQUEST', 'request body is empty: JSON expected');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(400, 'BAD_REQUEST', `request body is not JSON: ${(err as Error).message}`);
  }
}
