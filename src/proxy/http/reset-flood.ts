/**
 * HTTP/2 rapid-reset bound (CVE-2023-44487) at every HTTP/2 listener: a client that cancels streams
 * (RST_STREAM before the proxy sent response headers) faster than a token bucket allows — a burst of
 * RESET_BURST, refilled at RESET_REFILL_PER_S — gets its session closed with GOAWAY
 * ENHANCE_YOUR_CALM. Each accepted stream costs the proxy work (and, outbound, a stream to the peer
 * proxy), so a flood of open-and-cancel must end rather than be served as fast as it arrives.
 * Before this bound, the flood ended only when cancelled streams piled up to maxConcurrentStreams.
 */
import { constants, type Http2Session } from 'node:http2';

export const RESET_BURST = 1000;
export const RESET_REFILL_PER_S = 100;

interface Bucket { tokens: number; last: number }
const buckets = new WeakMap<Http2Session, Bucket>();

/** Counts one client-cancelled stream of `session`; true when that closed the session. */
export function noteStreamReset(session: Http2Session | undefined, now = performance.now(), onFlood?: () => void): boolean {
  if (session === undefined || session.destroyed) return false;
  let b = buckets.get(session);
  if (b === undefined) buckets.set(session, b = { tokens: RESET_BURST, last: now });
  b.tokens = Math.min(RESET_BURST, b.tokens + ((now - b.last) * RESET_REFILL_PER_S) / 1000);
  b.last = now;
  b.tokens -= 1;
  if (b.tokens >= 0) return false;
  onFlood?.();
  session.destroy(undefined, constants.NGHTTP2_ENHANCE_YOUR_CALM); // GOAWAY with that code, then close
  return true;
}
