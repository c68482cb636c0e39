/**
 * The proxy's live taps (SPEC §5 `trellis tap`): sessions started and stopped by the control plane over the
 * config stream (`tap-start`/`tap-stop`), fed by HttpIngress at the one point a request completes (where the
 * access log and metrics are recorded), in both directions.
 *
 * Cost when no tap is on: `observer` is undefined, so ingress does one property read and nothing else.
 * With taps on, a request costs a match per session; only a matching, admitted request builds an event
 * (and copies its headers, redacted and truncated: tap-headers.ts).
 *
 * Every bound drops and counts, never waits: the per-second token bucket (`rate`), the batch buffer of
 * MAX_TAP_BATCH events flushed every FLUSH_INTERVAL_MS or when full (`buffer`), and the config stream's
 * unsent bytes (`backpressure`: the batch is dropped when the stream already holds more than
 * MAX_STREAM_BACKLOG_BYTES). Drops are reported to the control plane in the session's next `tap` message
 * and counted in trellis_tap_events_dropped_total{reason}. Sessions end on tap-stop, when the config stream
 * reconnects (`clear`: the control plane re-sends tap-start), or after TAP_SESSION_TTL_MS without a refresh.
 */
import type { TapEvent } from '../../api/schema/tap.js';
import type { TapMessage, TapStartMessage } from '../../api/schema/xds.js';
import { pathOnly } from '../authz/path.js';
import { traceIdOf } from '../access-log.js';
import type { MeshRequest } from '../pipeline/types.js';
import { tapHeaders } from './tap-headers.js';
import { TapSession, type TapDropReason } from './tap-session.js';

export const FLUSH_INTERVAL_MS = 200;
/** Most unsent bytes on the config stream before a tap batch is dropped rather than queued. */
export const MAX_STREAM_BACKLOG_BYTES = 256 * 1024;
/** Most concurrent taps on one proxy (the control plane bounds them too). */
export const MAX_PROXY_TAP_SESSIONS = 64;

/** What ingress knows about a completed request. */
export type TapObserver = (req: MeshRequest, status: number, error: string | undefined, source: string, destination: string, latencyMs: number) => void;

export interface TapHubOptions {
  instance: string;
  /** Sends one message on the config stream unless its backlog exceeds `maxBacklogBytes`; false = not sent. */
  send: (msg: TapMessage, maxBacklogBytes: number) => boolean;
  onDropped?: (reason: TapDropReason, count: number) => void;
  onSessions?: (count: number) => void;
  now?: () => number;
}

export class TapHub {
  private readonly sessions = new Map<string, TapSession>();
  private timer: NodeJS.Timeout | undefined;
  private flushSoon: NodeJS.Immediate | undefined;
  private readonly now: () => number;
  /** Set while at least one tap is on; ingress calls it for every completed request. */
  observer: TapObserver | undefined;

  constructor(private readonly opts: TapHubOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number { return this.sessions.size; }

  start(msg: TapStartMessage): void {
    const now = this.now();
    const existing = this.sessions.get(msg.tapId);
    if (existing) { existing.refresh(msg, now); return; }
    if (this.sessions.size >= MAX_PROXY_TAP_SESSIONS) return;
    this.sessions.set(msg.tapId, new TapSession(msg, now));
    this.changed();
  }

  stop(tapId: string): void {
    const session = this.sessions.get(tapId);
    if (!session) return;
    this.sessions.delete(tapId); // what it still buffered has no reader any more
    this.changed();
  }

  /** The config stream broke or reconnected: every tap ends (the control plane starts them again). */
  clear(): void {
    if (this.sessions.size === 0) return;
    this.sessions.clear();
    this.changed();
  }

  /** Sends what every session buffered; ends expired sessions. Runs every FLUSH_INTERVAL_MS while taps are on. */
  flush(): void {
    const now = this.now();
    for (const session of [...this.sessions.values()]) {
      if (session.events.length > 0 || session.dropped > 0) this.flushSession(session);
      if (now >= session.expiresAt) { this.sessions.delete(session.id); this.changed(); }
    }
  }

  close(): void {
    this.sessions.clear();
    this.changed();
  }

  private readonly observe: TapObserver = (req, status, error, source, destination, latencyMs) => {
    let path: string | undefined;
    let method: string | undefined;
    let event: TapEvent | undefined;
    let chars = 0;
    let now = 0;
    for (const session of this.sessions.values()) {
      path ??= pathOnly(req.path);
      method ??= req.method.toUpperCase();
      if (!session.matches(method, path)) continue;
      if (now === 0) now = this.now();
      if (!session.admit(now)) { this.drop(session, 'rate', 1); continue; }
      if (session.full) { this.drop(session, 'buffer', 1); continue; }
      if (event === undefined) {
        event = this.eventOf(req, status, error, source, destination, latencyMs, now);
        chars = estimateChars(event);
      }
      session.push(event, chars);
      if (session.full) this.scheduleFlush();
    }
  };

  private eventOf(req: MeshRequest, status: number, error: string | undefined, source: string, destination: string, latencyMs: number, now: number): TapEvent {
    const traceId = traceIdOf(req.headers['traceparent']);
    const attempts = req.attrs.attempts;
    const upstream = req.attrs.upstreamAddress;
    const event: TapEvent = {
      at: new Date(now - latencyMs).toISOString(),
      instance: this.opts.instance,
      direction: req.direction,
      source: clip(source, 253),
      destination: clip(destination, 253),
      method: clip(req.method, 32),
      authority: clip(req.authority, 253),
      path: clip(req.path, 2048),
      status,
      latencyMs: Math.max(0, Math.round(latencyMs * 1000) / 1000),
      requestHeaders: tapHeaders(req.headers),
    };
    if (req.requestId) event.requestId = clip(req.requestId, 128);
    if (traceId) event.traceId = traceId;
    if (req.attrs.route !== undefined) event.route = clip(req.attrs.route, 512);
    if (error !== undefined) event.error = clip(error, 64);
    if (upstream !== undefined) event.upstream = clip(upstream, 253);
    if (attempts !== undefined && attempts > 1) event.retries = attempts - 1;
    return event;
  }

  private drop(session: TapSession, reason: TapDropReason, count: number): void {
    session.dropped += count;
    this.opts.onDropped?.(reason, count);
  }

  private flushSession(session: TapSession): void {
    const { events, dropped } = session.take();
    const sent = this.opts.send({ type: 'tap', tapId: session.id, events, dropped }, MAX_STREAM_BACKLOG_BYTES);
    if (!sent) {
      // Not sent: the events are lost, the count is kept for the next message.
      session.dropped += dropped + events.length;
      if (events.length > 0) this.opts.onDropped?.('backpressure', events.length);
    }
  }

  private scheduleFlush(): void {
    if (this.flushSoon) return;
    this.flushSoon = setImmediate(() => {
      this.flushSoon = undefined;
      for (const session of this.sessions.values()) if (session.full) this.flushSession(session);
    });
  }

  private changed(): void {
    const n = this.sessions.size;
    this.observer = n > 0 ? this.observe : undefined;
    if (n > 0 && !this.timer) {
      this.timer = setInterval(() => this.flush(), FLUSH_INTERVAL_MS);
      this.timer.unref();
    } else if (n === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    this.opts.onSessions?.(n);
  }
}

/** A generous estimate of an event's JSON size (fixed fields + the variable strings, twice for escaping). */
export function estimateChars(e: TapEvent): number {
  let n = 512 + e.path.length + (e.authority?.length ?? 0) + (e.route?.length ?? 0);
  for (const name in e.requestHeaders) n += name.length + e.requestHeaders[name]!.length + 6;
  return n * 2;
}

function clip(s: string, max: number): string {
  return s.length > max ? s.slice(0, max) : s;
}
