/**
 * Retries (HTTPRoute rule `retry`), a RuleFilterFactory; null when the rule has no retry.
 *
 * - `attempts` is the number of retries (Gateway API / Istio meaning): at most 1 + attempts tries.
 * - `perTryTimeout`: a try with no response head in time fails with 504 UPSTREAM_TIMEOUT (its stream
 *   is cancelled) and is retried when `5xx` or `gateway-error` is among the conditions.
 * - Backoff: exponential with full jitter, random(0, min(10×base, base×2^n)), base = `backoff` (25ms).
 * - Conditions (`on`): 5xx (any 5xx response, or a connect failure / reset / timeout), gateway-error
 *   (502/503/504 responses and the proxy's own connect/reset/timeout errors), connect-failure
 *   (UPSTREAM_CONNECT_FAILED), reset (UPSTREAM_RESET), retriable-status-codes (`codes`).
 * - Only idempotent methods (GET HEAD OPTIONS PUT DELETE TRACE) are retried.
 * - Bodies up to 64 KiB are buffered (http/replayable-body.ts) and replayed per try; a larger body
 *   streams once, unretried, counted in trellis_retry_body_overflow_total.
 * - A retry needs the destination's retry budget (filters/retry-budget.ts) and, with a
 *   circuitBreaker.maxRetries, a retry slot (filters/circuit-breaker.ts); otherwise the last answer
 *   stands and trellis_retry_budget_exhausted_total counts it.
 * - A discarded 5xx response's body is destroyed before the next try. req.attrs.attempts = tries made.
 */
import { MeshError, toMeshError, type ErrorCode } from '../../api/errors.js';
import { parseDuration } from '../../api/duration.js';
import type { HTTPRouteRule } from '../../api/schema/resources.js';
import type { ProxyMetrics } from '../metrics.js';
import type { RuleFilterFactory } from '../pipeline/factory.js';
import type { HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';
import { bufferBody, REPLAY_BUFFER_LIMIT } from '../http/replayable-body.js';
import { circuitBreakerFor, type CircuitBreaker } from './circuit-breaker.js';
import { retryBudgetFor, type RetryBudget } from './retry-budget.js';

export const DEFAULT_BACKOFF_MS = 25;
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

type RetryOn = '5xx' | 'gateway-error' | 'connect-failure' | 'reset' | 'retriable-status-codes';

export interface RetrySettings {
  attempts: number;
  perTryTimeoutMs?: number;
  backoffMs: number;
  on: readonly RetryOn[];
  codes?: readonly number[];
}

export interface RetryDeps {
  destination: string;
  budget: RetryBudget;
  breaker?: CircuitBreaker;
  metrics?: ProxyMetrics;
  random?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  bodyLimit?: number;
}

const GATEWAY_ERROR_CODES: ReadonlySet<ErrorCode> = new Set(['UPSTREAM_CONNECT_FAILED', 'UPSTREAM_RESET', 'UPSTREAM_TIMEOUT']);

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) { resolve(); return; }
    const done = () => { clearTimeout(timer); signal.removeEventListener('abort', done); resolve(); };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export class RetryFilter implements HttpFilter {
  readonly name = 'retry';
  private readonly on: ReadonlySet<RetryOn>;
  private readonly codes: ReadonlySet<number>;
  private readonly random: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;

  constructor(private readonly settings: RetrySettings, private readonly deps: RetryDeps) {
    this.on = new Set(settings.on);
    this.codes = new Set(settings.codes ?? []);
    this.random = deps.random ?? Math.random;
    this.sleep = deps.sleep ?? defaultSleep;
  }

  /** Why a response should be retried, or undefined. */
  retryReasonForStatus(status: number): string | undefined {
    if (this.on.has('5xx') && status >= 500 && status <= 599) return 'status';
    if (this.on.has('gateway-error') && (status === 502 || status === 503 || status === 504)) return 'status';
    if (this.on.has('retriable-status-codes') && this.codes.has(status)) return 'status';
    return undefined;
  }

  /** Why a proxy-side failure should be retried, or undefined. */
  retryReasonForError(err: MeshError): string | undefined {
    const reason = err.code === 'UPSTREAM_CONNECT_FAILED' ? 'connect-failure' : err.code === 'UPSTREAM_RESET' ? 'reset' : 'timeout';
    if ((this.on.has('5xx') || this.on.has('gateway-error')) && GATEWAY_ERROR_CODES.has(err.code)) return reason;
    if (this.on.has('connect-failure') && err.code === 'UPSTREAM_CONNECT_FAILED') return reason;
    if (this.on.has('reset') && err.code === 'UPSTREAM_RESET') return reason;
    return undefined;
  }

  async handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    const { attempts } = this.settings;
    const { budget, breaker, metrics, destination } = this.deps;
    budget.recordRequest(); // every request of a retrying rule earns budget, retried or not
    if (attempts <= 0 || !IDEMPOTENT_METHODS.has(req.method.toUpperCase())) {
      req.attrs.attempts = 1;
      return this.tryOnce(req, next);
    }
    const body = await bufferBody(req.body, req.headers, this.deps.bodyLimit ?? REPLAY_BUFFER_LIMIT);
    if (!body.replayable) {
      metrics?.retryBodyOverflows.labels({ destination }).inc();
      req.body = body.stream;
      req.attrs.attempts = 1;
      return this.tryOnce(req, next);
    }
    let releaseRetry: (() => void) | undefined;
    try {
      for (let tried = 0; ; tried++) {
        req.body = body.replay();
        req.attrs.attempts = tried + 1;
        let response: MeshResponse | undefined;
        let error: MeshError | undefined;
        let reason: string | undefined;
        try {
          response = await this.tryOnce(req, next);
          reason = this.retryReasonForStatus(response.status);
        } catch (err) {
          error = toMeshError(err);
          reason = this.retryReasonForError(error);
        } finally {
          releaseRetry?.();
          releaseRetry = undefined;
        }
        const last = (): MeshResponse => { if (error) throw error; return response!; };
        if (!reason || tried >= attempts || req.signal.aborted) return last();
        if (!budget.tryWithdraw()) {
          metrics?.retryBudgetExhausted.labels({ destination }).inc();
          return last();
        }
        if (breaker) {
          releaseRetry = breaker.tryAcquireRetry();
          if (!releaseRetry) {
            metrics?.retryBudgetExhausted.labels({ destination }).inc();
            return last();
          }
        }
        // This answer is discarded: free its stream before trying again.
        if (response?.body) { response.body.on('error', () => {}); response.body.destroy(); }
        metrics?.retries.labels({ destination, reason }).inc();
        const base = this.settings.backoffMs;
        const cap = Math.min(base * 10, base * 2 ** tried);
        await this.sleep(this.random() * cap, req.signal);
        if (req.signal.aborted) throw new MeshError('UPSTREAM_RESET', 'the downstream went away during a retry backoff');
      }
    } finally {
      releaseRetry?.();
    }
  }

  /** One try, bounded by perTryTimeout until its response head arrives. */
  private tryOnce(req: MeshRequest, next: Next): Promise<MeshResponse> {
    const timeout = this.settings.perTryTimeoutMs;
    if (timeout === undefined) return next(req);
    const controller = new AbortController();
    const attemptReq: MeshRequest = { ...req, signal: AbortSignal.any([req.signal, controller.signal]) };
    return new Promise<MeshResponse>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        controller.abort();
        reject(new MeshError('UPSTREAM_TIMEOUT', `no response within the per-try timeout of ${timeout}ms`));
      }, timeout);
      next(attemptReq).then((resp) => {
        clearTimeout(timer);
        if (settled) { resp.body?.on('error', () => {}); resp.body?.destroy(); return; }
        settled = true;
        resolve(resp);
      }, (err: unknown) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        reject(err);
      });
    });
  }
}

export function retrySettings(retry: NonNullable<HTTPRouteRule['retry']>): RetrySettings {
  return {
    attempts: retry.attempts,
    perTryTimeoutMs: retry.perTryTimeout ? parseDuration(retry.perTryTimeout) : undefined,
    backoffMs: retry.backoff ? parseDuration(retry.backoff) : DEFAULT_BACKOFF_MS,
    on: retry.on,
    codes: retry.codes,
  };
}

export const retryFactory: RuleFilterFactory = {
  name: 'retry',
  build(ctx, rule, _routeName, service) {
    if (!rule.retry) return null;
    return new RetryFilter(retrySettings(rule.retry), {
      destination: service,
      budget: retryBudgetFor(ctx.snapshot, service),
      breaker: circuitBreakerFor(ctx.snapshot, service, ctx.services.metrics),
      metrics: ctx.services.metrics,
    });
  },
};
