/**
 * The request headers a tap event shows: at most MAX_TAP_HEADERS names (lower-case, as the proxy holds them),
 * each value cut to MAX_TAP_HEADER_VALUE characters (names to MAX_TAP_HEADER_NAME), repeated values joined with ", ", and the values of
 * TAP_REDACTED_HEADERS (credentials, cookies) replaced by "[redacted]". Only called for requests a tap matched.
 */
import { MAX_TAP_HEADERS, MAX_TAP_HEADER_VALUE, TAP_REDACTED_HEADERS } from '../../api/schema/tap.js';
import type { HeaderMap } from '../pipeline/types.js';

export const REDACTED = '[redacted]';
export const MAX_TAP_HEADER_NAME = 128;

const redacted = new Set(TAP_REDACTED_HEADERS);

export function tapHeaders(headers: HeaderMap): Record<string, string> {
  const out: Record<string, string> = {};
  let count = 0;
  for (const name in headers) {
    if (count >= MAX_TAP_HEADERS) break;
    const raw = headers[name];
    if (raw === undefined) continue;
    const key = (name.length > MAX_TAP_HEADER_NAME ? name.slice(0, MAX_TAP_HEADER_NAME) : name).toLowerCase();
    let value = redacted.has(key) ? REDACTED : Array.isArray(raw) ? raw.join(', ') : raw;
    if (value.length > MAX_TAP_HEADER_VALUE) value = value.slice(0, MAX_TAP_HEADER_VALUE);
    out[key] = value;
    count++;
  }
  return out;
}
