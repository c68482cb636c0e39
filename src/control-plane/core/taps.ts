/**
 * Live tap sessions (GET /api/v1/tap, `trellis tap`): the control plane's side of the tap protocol.
 *
 *   open(filter, subscriber)  validates the TapFilter (ValidationError → 400 INVALID with field paths), bounds the
 *                             concurrent sessions (TooManyTapsError → 429 TOO_MANY_TAPS), sends `tap-start` to every
 *                             connected proxy of the service;
 *   proxyConnected            a proxy of a tapped service that connects later (or reconnects) gets `tap-start` too;
 *   receive                   a proxy's `tap` batch goes to the session's subscriber; the proxy's drops are added up;
 *                             a batch for an unknown session (the client left) answers `tap-stop`;
 *   close                     the client left: `tap-stop` to every proxy tapped;
 *   refresh                   every TAP_REFRESH_MS the adapter re-sends `tap-start` (proxies end a tap they do not
 *                             hear about for 10 minutes, so a lost control plane never leaves a tap on).
 *
 * Pure core: the proxies are reached through the TapTransport port (the xDS adapter), the client through a
 * TapSubscriber (the API adapter); nothing here waits on either.
 */
import { TapFilter, type TapEvent } from '../../api/schema/tap.js';
import type { ServerMessage, TapMessage } from '../../api/schema/xds.js';
import { ValidationError } from '../../api/schema/validate.js';
import { issuesToFieldErrors } from './resource-service.js';

export const MAX_TAP_SESSIONS = 32;
/** Events per second each proxy may report for one tap. */
export const TAP_EVENTS_PER_SECOND = 100;
export const TAP_REFRESH_MS = 60_000;

export type TapControlMessage = Extract<ServerMessage, { type: 'tap-start' | 'tap-stop' }>;

/** How the core reaches the proxies (implemented by the xDS adapter). */
export interface TapTransport {
  /** Instance ids of the connected (hello received) proxies of `service`. */
  instancesOf(service: string): string[];
  send(instanceId: string, msg: TapControlMessage): void;
}

/** Where tap gauges and drop counters go (implemented by the Prometheus adapter). */
export interface TapMetrics {
  setTapSessions(n: number): void;
  /** `proxy`: dropped by the proxies (rate, buffer, backpressure); `client`: by the API's per-client queue. */
  tapEventsDropped(where: 'proxy' | 'client', n: number): void;
}

/** The client end of a session (implemented by the API adapter). Must not block. */
export interface TapSubscriber {
  event(event: TapEvent): void;
  /** The tapped instances or the dropped count changed. */
  changed(): void;
}

export class TooManyTapsError extends Error {
  readonly code = 'TOO_MANY_TAPS';
  constructor(max: number) {
    super(`at most ${max} taps may run at once; stop one and retry`);
    this.name = 'TooManyTapsError';
  }
}

export class TapSession {
  /** Instances a tap-start was sent to. */
  readonly instances = new Set<string>();
  /** Events lost at any bound so far (proxies' and the client queue's). */
  dropped = 0;
  closed = false;

  constructor(readonly id: string, readonly filter: TapFilter, readonly subscriber: TapSubscriber, private readonly owner: TapService) {}

  /** The client queue dropped `n` events. */
  countDropped(n: number): void {
    if (n <= 0 || this.closed) return;
    this.dropped += n;
    this.owner.metrics?.tapEventsDropped('client', n);
  }

  close(): void { this.owner.close(this.id); }
}

export interface TapServiceOptions {
  maxSessions?: number;
  eventsPerSecond?: number;
  metrics?: TapMetrics;
  newId?: () => string;
}

let idCounter = 0;
const defaultId = () => `tap-${(++idCounter).toString(36)}-${Math.random().toString(36).slice(2, 10)}`;

export class TapService {
  private readonly sessions = new Map<string, TapSession>();
  private transport?: TapTransport;
  readonly metrics?: TapMetrics;
  private readonly maxSessions: number;
  private readonly eventsPerSecond: number;
  private readonly newId: () => string;

  constructor(opts: TapServiceOptions = {}) {
    this.maxSessions = opts.maxSessions ?? MAX_TAP_SESSIONS;
    this.eventsPerSecond = opts.eventsPerSecond ?? TAP_EVENTS_PER_SECOND;
    this.newId = opts.newId ?? defaultId;
    if (opts.metrics) this.metrics = opts.metrics;
  }

  attach(transport: TapTransport): void { this.transport = transport; }

  get size(): number { return this.sessions.size; }

  /** Validates `input` (a TapFilter), starts the tap on every connected proxy of the service. */
  open(input: unknown, subscriber: TapSubscriber): TapSession {
    const parsed = TapFilter.safeParse(input);
    if (!parsed.success) throw new ValidationError(issuesToFieldErrors(parsed.error.issues));
    if (this.sessions.size >= this.maxSessions) throw new TooManyTapsError(this.maxSessions);
    const session = new TapSession(this.newId(), parsed.data, subscriber, this);
    this.sessions.set(session.id, session);
    this.metrics?.setTapSessions(this.sessions.size);
    for (const id of this.transport?.instancesOf(session.filter.service) ?? []) this.startOn(session, id);
    return session;
  }

  close(id: string): void {
    const session = this.sessions.get(id);
    if (!session) return;
    session.closed = true;
    this.sessions.delete(id);
    this.metrics?.setTapSessions(this.sessions.size);
    for (const instance of session.instances) this.transport?.send(instance, { type: 'tap-stop', tapId: id });
    session.instances.clear();
  }

  /** A proxy said hello: every tap of its service starts on it. */
  proxyConnected(instanceId: string, service: string): void {
    for (const session of this.sessions.values()) {
      if (session.filter.service === service) this.startOn(session, instanceId);
    }
  }

  /** A proxy's stream closed: its taps ended with it. */
  proxyDisconnected(instanceId: string): void {
    for (const session of this.sessions.values()) {
      if (session.instances.delete(instanceId)) session.subscriber.changed();
    }
  }

  /** A `tap` batch from a proxy of `service`. */
  receive(instanceId: string, service: string, msg: TapMessage): void {
    const session = this.sessions.get(msg.tapId);
    if (!session || session.filter.service !== service) {
      // The client left (or never was): make sure this proxy stops.
      this.transport?.send(instanceId, { type: 'tap-stop', tapId: msg.tapId });
      return;
    }
    if (msg.dropped > 0) {
      session.dropped += msg.dropped;
      this.metrics?.tapEventsDropped('proxy', msg.dropped);
    }
    for (const event of msg.events) {
      if (session.closed) return;
      session.subscriber.event(event);
    }
    if (msg.dropped > 0) session.subscriber.changed();
  }

  /** Re-sends tap-start for every session on its proxies (keeps their tap from expiring). */
  refresh(): void {
    for (const session of this.sessions.values()) {
      for (const instance of session.instances) this.transport?.send(instance, this.startMessage(session));
    }
  }

  private startOn(session: TapSession, instanceId: string): void {
    this.transport?.send(instanceId, this.startMessage(session));
    if (!session.instances.has(instanceId)) {
      session.instances.add(instanceId);
      session.subscriber.changed();
    }
  }

  private startMessage(session: TapSession): TapControlMessage {
    return {
      type: 'tap-start', tapId: session.id, maxEventsPerSecond: this.eventsPerSecond,
      ...(session.filter.path !== undefined ? { path: session.filter.path } : {}),
      ...(session.filter.method !== undefined ? { method: session.filter.method } : {}),
    };
  }
}
