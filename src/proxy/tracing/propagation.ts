/**
 * Trace context propagation: W3C `traceparent`/`tracestate` and B3 (multi-header `x-b3-*` and the
 * single `b3` header). extractTrace reads what arrived; injectTrace rewrites the headers so the next
 * hop is a child of this hop's span. A valid W3C traceparent wins over B3 when both are present; B3
 * headers that arrived are rewritten in the same form, so a B3-only downstream keeps the trace too.
 */
import { randomFillSync } from 'node:crypto';
import type { HeaderMap } from '../pipeline/types.js';

export interface IncomingTrace {
  /** 32 lower-case hex digits (a 64-bit B3 trace id is left-padded with zeros). */
  traceId?: string;
  /** The caller's span id: this hop's parent. */
  parentSpanId?: string;
  /** The caller's sampling decision; undefined when none was made yet (this hop is the root). */
  sampled?: boolean;
  traceState?: string;
  /** B3 form that arrived, rewritten in the same form on the way out. */
  b3?: 'multi' | 'single';
}

const TRACEPARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const HEX16 = /^[0-9a-f]{16}$/;
const HEX32 = /^[0-9a-f]{32}$/;
const ZERO = /^0+$/;

function header(headers: HeaderMap, name: string): string | undefined {
  const v = headers[name];
  return typeof v === 'string' ? v : undefined;
}

export function parseTraceparent(value: string | undefined): { traceId: string; spanId: string; sampled: boolean } | undefined {
  if (!value) return undefined;
  const m = TRACEPARENT_RE.exec(value.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (ZERO.test(traceId) || ZERO.test(spanId)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

function b3TraceId(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const v = value.toLowerCase();
  const id = HEX16.test(v) ? v.padStart(32, '0') : HEX32.test(v) ? v : undefined;
  return id && !ZERO.test(id) ? id : undefined;
}

function b3SpanId(value: string | undefined): string | undefined {
  const v = value?.toLowerCase();
  return v && HEX16.test(v) && !ZERO.test(v) ? v : undefined;
}

function b3Sampled(value: string | undefined): boolean | undefined {
  switch (value?.toLowerCase()) {
    case '1': case 'true': case 'd': return true;
    case '0': case 'false': return false;
    default: return undefined;
  }
}

/** The trace context of an incoming request, or undefined when it carries none. */
export function extractTrace(headers: HeaderMap): IncomingTrace | undefined {
  const tp = parseTraceparent(header(headers, 'traceparent'));
  const b3Form: IncomingTrace['b3'] = header(headers, 'b3') !== undefined ? 'single'
    : header(headers, 'x-b3-traceid') !== undefined || header(headers, 'x-b3-sampled') !== undefined || header(headers, 'x-b3-flags') !== undefined ? 'multi' : undefined;
  if (tp) {
    const out: IncomingTrace = { traceId: tp.traceId, parentSpanId: tp.spanId, sampled: tp.sampled };
    const ts = header(headers, 'tracestate');
    if (ts) out.traceState = ts;
    if (b3Form) out.b3 = b3Form;
    return out;
  }
  if (b3Form === 'single') {
    const parts = header(headers, 'b3')!.trim().split('-');
    if (parts.length === 1) { // a sampling decision only: "0", "1" or "d"
      const sampled = b3Sampled(parts[0]);
      return sampled === undefined ? undefined : { sampled, b3: 'single' };
    }
    const traceId = b3TraceId(parts[0]);
    const spanId = b3SpanId(parts[1]);
    if (!traceId || !spanId) return undefined;
    const out: IncomingTrace = { traceId, parentSpanId: spanId, b3: 'single' };
    const sampled = b3Sampled(parts[2]);
    if (sampled !== undefined) out.sampled = sampled;
    return out;
  }
  if (b3Form === 'multi') {
    const out: IncomingTrace = { b3: 'multi' };
    const sampled = header(headers, 'x-b3-flags') === '1' ? true : b3Sampled(header(headers, 'x-b3-sampled'));
    if (sampled !== undefined) out.sampled = sampled;
    const traceId = b3TraceId(header(headers, 'x-b3-traceid'));
    const spanId = b3SpanId(header(headers, 'x-b3-spanid'));
    if (traceId && spanId) { out.traceId = traceId; out.parentSpanId = spanId; }
    return out.traceId || out.sampled !== undefined ? out : undefined;
  }
  return undefined;
}

/** Rewrites the trace headers so the next hop continues `traceId` as a child of `spanId`. */
export function injectTrace(headers: HeaderMap, traceId: string, spanId: string, sampled: boolean, incoming: IncomingTrace | undefined): void {
  headers['traceparent'] = `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
  if (!incoming?.traceState) delete headers['tracestate'];
  const parent = incoming?.parentSpanId;
  if (incoming?.b3 === 'single') {
    headers['b3'] = `${traceId}-${spanId}-${sampled ? '1' : '0'}${parent ? `-${parent}` : ''}`;
  } else if (incoming?.b3 === 'multi') {
    headers['x-b3-traceid'] = traceId;
    headers['x-b3-spanid'] = spanId;
    if (parent) headers['x-b3-parentspanid'] = parent;
    else delete headers['x-b3-parentspanid'];
    headers['x-b3-sampled'] = sampled ? '1' : '0';
    delete headers['x-b3-flags'];
  }
}

// Ids come from a pooled random buffer: one getrandom call per 512 span ids, not one per id.
const pool = Buffer.alloc(4096);
let offset = pool.length;

function randomHex(bytes: number): string {
  for (;;) {
    if (offset + bytes > pool.length) { randomFillSync(pool); offset = 0; }
    const hex = pool.toString('hex', offset, offset + bytes);
    offset += bytes;
    if (!ZERO.test(hex)) return hex;
  }
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);
