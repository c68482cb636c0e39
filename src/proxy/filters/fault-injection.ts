/**
 * Gateway-style FaultInjection on a route rule: `delay {fixed, percent}` holds a sampled request
 * before it goes upstream, then `abort {status, percent}` answers a sampled request with
 * MeshError FAULT_INJECTED carrying the configured status (gRPC: mapped by http/error-response.ts).
 * The delay stops early when req.signal aborts (the client went away, or an outer request timeout
 * fired: the delay counts toward the deadline because the timeout filter runs outside this one).
 * Sampling uses an injectable random source (Math.random by default).
 */
import { MeshError } from '../../api/errors.js';
import { parseDuration } from '../../api/duration.js';
import type { HTTPRouteRule } from '../../api/schema/resources.js';
import type { RuleFilterFactory } from '../pipeline/factory.js';
import type { HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';

export interface FaultSpec {
  delay?: { ms: number; percent: number };
  abort?: { status: number; percent: number };
}

export class FaultInjection implements HttpFilter {
  readonly name = 'fault-injection';
  constructor(private readonly spec: FaultSpec, private readonly random: () => number = Math.random) {}

  private sampled(percent: number): boolean {
    return percent >= 100 || (percent > 0 && this.random() * 100 < percent);
  }

  handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    const { delay } = this.spec;
    if (delay && delay.ms > 0 && this.sampled(delay.percent)) {
      req.attrs.faultDelayMs = delay.ms;
      return wait(delay.ms, req.signal).then(() => this.afterDelay(req, next));
    }
    return this.afterDelay(req, next);
  }

  private afterDelay(req: MeshRequest, next: Next): Promise<MeshResponse> {
    const { abort } = this.spec;
    if (abort && this.sampled(abort.percent)) {
      return Promise.reject(new MeshError('FAULT_INJECTED', `fault injected: abort with status ${abort.status}`, { status: abort.status }));
    }
    return next(req);
  }
}

/** Resolves after ms, or rejects as soon as signal aborts (nothing is left pending either way). */
function wait(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(abortedError());
  return new Promise((resolve, reject) => {
    const onAbort = () => { clearTimeout(timer); reject(abortedError()); };
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function abortedError(): MeshError {
  return new MeshError('UPSTREAM_RESET', 'the request was cancelled during an injected delay');
}

/** Reads the rule's FaultInjection filter (at most one), or undefined. */
export function faultSpecOf(rule: HTTPRouteRule, routeName: string): FaultSpec | undefined {
  const faults = (rule.filters ?? []).flatMap((f) => (f.type === 'FaultInjection' ? [f.faultInjection] : []));
  if (faults.length > 1) throw new Error(`HTTPRoute ${routeName}: a rule may have at most one FaultInjection filter`);
  const f = faults[0];
  if (!f) return undefined;
  const spec: FaultSpec = {};
  if (f.delay && f.delay.percent > 0) spec.delay = { ms: parseDuration(f.delay.fixed), percent: f.delay.percent };
  if (f.abort && f.abort.percent > 0) spec.abort = { status: f.abort.status, percent: f.abort.percent };
  return spec.delay || spec.abort ? spec : undefined;
}

export function createFaultInjectionFactory(random: () => number = Math.random): RuleFilterFactory {
  return {
    name: 'fault-injection',
    build(_ctx, rule, routeName) {
      const spec = faultSpecOf(rule, routeName);
      return spec ? new FaultInjection(spec, random) : null;
    },
  };
}

export const faultInjectionFactory: RuleFilterFactory = createFaultInjectionFactory();
