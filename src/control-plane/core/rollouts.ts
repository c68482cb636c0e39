/**
 * The rollout controller: drives every Rollout (SPEC §3) through its steps, like Flagger or Argo Rollouts.
 *
 *   Pending ──(a ready stable and a ready canary instance)──▶ Progressing step 0 (canary = steps[0]%)
 *   Progressing step i ──every `interval`: analysis of the canary over that interval──▶
 *       passed  → step i+1 (canary = steps[i+1]%), or after the last step → Succeeded (canary 100%)
 *       failed  → RolledBack (canary 0%): success rate below minSuccessRate, p99 above maxP99Latency,
 *                 or no ready canary instance left
 *       held    → same step, analysed again one interval later: fewer than minRequests requests reached the
 *                 canary; the MAX_CONSECUTIVE_HOLDS-th hold in a row rolls back (a canary nobody can reach
 *                 — its proxies gone, every request failing before it — must not stay in the split forever)
 *   promote → Succeeded (canary 100%) from any other phase, when a canary instance is ready
 *   abort   → Aborted (canary 0%) from Pending, Progressing or Succeeded
 *
 * Succeeded keeps the canary at 100% for as long as the Rollout exists: finishing a release is the user's
 * move (retire the stable instances and delete the Rollout, which removes the split; or set `stable` to the
 * new version and `canary` to the next one, which starts a new rollout). RolledBack and Aborted keep 0% the
 * same way. Changing `service`, `stable` or `canary` starts over at Pending; changing `steps`, `interval` or
 * `analysis` applies to the running rollout (its step index is kept, clamped to the new steps).
 *
 * Analysis reads the canary instances' own inbound view (core/subset-metrics.ts): requests, success rate
 * (status < 500 and no proxy error) and p99 over the last interval. Unset thresholds are not checked.
 *
 * Status is persisted in the store (blob ROLLOUT_STATUS_BLOB) on every change; a restarted control plane
 * resumes each rollout at its phase and step, with a whole fresh interval before the next analysis (the
 * golden metrics of before the restart are gone). Splits in force are read by the compiler (routing()),
 * and every weight change calls onRoutingChange: a new config version pushed like any other.
 *
 * Several control planes sharing a store (`elected`): one of them leads (Store.campaign, wired by main.ts) and
 * only the leader reconciles, analyses and writes the status. The others follow: they load the status blob on
 * each of its changes (statusChanged) and serve it (list, routing), so every proxy gets the same splits
 * whichever control plane it streams from. A follower that becomes leader resumes from the persisted status
 * like a restart (a whole fresh interval); promote/abort on a follower go to the leader (`forward`).
 *
 * Pure domain: time from an injected clock, instances and metrics from functions, persistence via the Store port.
 */
import { formatDuration, parseDuration } from '../../api/duration.js';
import type { ResourceOf } from '../../api/schema/resources.js';
import { byName } from '../../api/resource-order.js';
import {
  ROLLOUT_HISTORY_MAX, RolloutStatus, type RolloutAnalysis, type RolloutPhase,
} from '../../api/schema/rollout.js';
import type { Store } from './ports.js';
import { splitApplies, type RolloutRouting } from './rollout-routing.js';
import type { InstanceState } from './registry.js';
import { isDraining } from './compiler.js';
import { matches, type SubsetQuery, type SubsetResult } from './subset-metrics.js';

/** The leadership (Store.campaign) whose holder runs the rollouts when several control planes share a store. */
export const ROLLOUT_LEADERSHIP = 'rollouts';
/** Store blob holding every Rollout's status. */
export const ROLLOUT_STATUS_BLOB = 'rollout-status';
/** Consecutive analyses without minRequests requests that roll back (Flagger's `threshold` role). */
export const MAX_CONSECUTIVE_HOLDS = 5;
/** minRequests when the Rollout sets no analysis (the schema's default). */
export const DEFAULT_MIN_REQUESTS = 20;

export interface RolloutClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The process clock (globals looked up at each call, so node:test's mock.timers applies). */
export const SYSTEM_CLOCK: RolloutClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms) as unknown as { unref?: () => void };
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as Parameters<typeof clearTimeout>[0]),
};

/** An instance of the Rollout's service, as the controller needs it. */
export interface RolloutInstance {
  labels: Readonly<Record<string, string>>;
  /** Connected (or restored after a control-plane restart), not draining. */
  ready: boolean;
  /** The instance's protocol: a tcp service is not rolled out (no request stats, HTTPRoutes do not apply). */
  protocol?: string;
}

/** The instances of `service` in the registry, as the controller sees them (draining ones are not ready). */
export function registryInstances(registry: { states(): readonly InstanceState[] }, service: string): RolloutInstance[] {
  const out: RolloutInstance[] = [];
  for (const i of registry.states()) if (i.info.service === service) out.push({ labels: i.info.labels, ready: !isDraining(i), protocol: i.info.protocol });
  return out;
}

export interface RolloutControllerDeps {
  store: Store;
  /** Golden metrics per label subset (SubsetMetrics). `track` is told which services have a Rollout. */
  metrics: { query(q: SubsetQuery): SubsetResult; track?(services: Iterable<string>): void };
  instances(service: string): readonly RolloutInstance[];
  /** A split changed: push a new config version. */
  onRoutingChange(): void;
  /**
   * Leadership is elected (shared stores): start as a follower until setLeader(true). Default: this
   * controller is the only one and leads from start().
   */
  elected?: boolean;
  /** Runs promote/abort on the leader, from a follower (core/rollout-commands.ts). */
  forward?(action: 'promote' | 'abort', service: string): Promise<RolloutStatus>;
  clock?: RolloutClock;
  log?: { info(msg: string, fields?: Record<string, unknown>): void; warn(msg: string, fields?: Record<string, unknown>): void };
}

/** promote/abort refused: no Rollout for the service (404) or not possible now (409). */
export class RolloutActionError extends Error {
  constructor(readonly status: 404 | 409 | 503, readonly code: 'NOT_FOUND' | 'CONFLICT' | 'UNAVAILABLE', message: string) {
    super(message);
    this.name = 'RolloutActionError';
  }
}

type Rollout = ResourceOf<'Rollout'>;

interface Entry {
  /** service + stable + canary: a change starts a new rollout. */
  identity: string;
  status: RolloutStatus;
  spec: Rollout['spec'];
  timer?: unknown;
}

interface PersistedState {
  rollouts: Record<string, { identity: string; status: RolloutStatus }>;
}

function identityOf(spec: Rollout['spec']): string {
  const sorted = (m: Record<string, string>) => Object.keys(m).sort().map((k) => [k, m[k]]);
  return JSON.stringify([spec.service, sorted(spec.stable), sorted(spec.canary)]);
}

export function labelsText(m: Readonly<Record<string, string>>): string {
  return Object.keys(m).sort().map((k) => `${k}=${m[k]}`).join(',');
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const msText = (x: number) => `${x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0)}ms`;

/**
 * Pure: the analysis verdict for one interval's canary metrics. minSuccessRate is a percent (0..100),
 * maxP99Latency a duration.
 */
export function evaluateAnalysis(
  spec: Rollout['spec'], res: SubsetResult, windowMs: number, at: string,
): RolloutAnalysis {
  const minRequests = spec.analysis?.minRequests ?? DEFAULT_MIN_REQUESTS;
  const base = {
    at, windowMs, requests: res.requests,
    ...(res.successRate !== undefined ? { successRate: Math.round(res.successRate * 10_000) / 10_000 } : {}),
    ...(res.p99Ms !== undefined ? { p99Ms: Math.round(res.p99Ms * 1000) / 1000 } : {}),
  };
  if (res.requests < minRequests) {
    return { ...base, result: 'held', reason: `${res.requests} requests reached the canary in ${formatDuration(windowMs)}, fewer than minRequests ${minRequests}` };
  }
  const failures: string[] = [];
  const min = spec.analysis?.minSuccessRate;
  if (min !== undefined && res.successRate !== undefined && res.successRate * 100 < min) {
    failures.push(`success rate ${pct(res.successRate)} < minSuccessRate ${min}%`);
  }
  const maxP99 = spec.analysis?.maxP99Latency;
  if (maxP99 !== undefined && res.p99Ms !== undefined && res.p99Ms > parseDuration(maxP99)) {
    failures.push(`p99 ${msText(res.p99Ms)} > maxP99Latency ${maxP99}`);
  }
  if (failures.length > 0) return { ...base, result: 'failed', reason: failures.join('; ') };
  const parts = [`${res.requests} requests`];
  if (res.successRate !== undefined) parts.push(`success rate ${pct(res.successRate)}`);
  if (res.p99Ms !== undefined) parts.push(`p99 ${msText(res.p99Ms)}`);
  return { ...base, result: 'passed', reason: parts.join(', ') };
}

export class RolloutController {
  private readonly deps: RolloutControllerDeps;
  private readonly clock: RolloutClock;
  private readonly entries = new Map<string, Entry>();
  private chain: Promise<void> = Promise.resolve();
  private reconcileQueued = false;
  private started = false;
  private closed = false;
  /** The status JSON last written to (leader) or read from (follower) the store. */
  private written?: string;
  private leader: boolean;
  /** A follower's view: the leader's statuses, as last read from the store. */
  private followed: RolloutStatus[] = [];
  /**
   * What list() and routing() serve: `entries` once this controller leads and has loaded and reconciled them;
   * `followed` otherwise (also while a new leader loads, so no config version goes out without the splits).
   */
  private serving: 'entries' | 'followed' = 'followed';

  constructor(deps: RolloutControllerDeps) {
    this.deps = deps;
    this.clock = deps.clock ?? SYSTEM_CLOCK;
    this.leader = !deps.elected;
  }

  get isLeader(): boolean {
    return this.leader;
  }

  /** Loads the persisted statuses and reconciles with the Rollout resources (before the first config version). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (!this.leader) {
      await this.run(() => this.follow());
      return;
    }
    await this.run(() => this.lead('after a control-plane restart'));
  }

  /**
   * Elected leadership changed (Store.campaign). Leading: load the persisted statuses and resume them (a whole
   * fresh interval before each next analysis). Following: stop every timer and serve the stored statuses.
   */
  setLeader(leader: boolean): void {
    if (this.closed || !this.started || leader === this.leader) return;
    this.leader = leader;
    this.deps.log?.info(leader ? 'leading the rollouts' : 'following the rollouts of another control plane');
    if (leader) {
      void this.run(() => this.lead('after a change of leading control plane'));
      return;
    }
    // Keep serving what this controller decided last until the store says otherwise.
    if (this.serving === 'entries') this.followed = this.list();
    this.serving = 'followed';
    for (const e of this.entries.values()) this.clearTimer(e);
    this.entries.clear();
    this.written = undefined;
    void this.run(() => this.follow());
  }

  /** The status blob changed (store watch, or `reset`): a follower reloads it. */
  statusChanged(): Promise<void> {
    if (this.closed || !this.started || this.leader) return Promise.resolve();
    return this.run(() => this.follow());
  }

  private async lead(resumeReason: string): Promise<void> {
    if (this.closed || !this.leader) return;
    for (const e of this.entries.values()) this.clearTimer(e);
    this.entries.clear();
    const text = await this.deps.store.getBlob(ROLLOUT_STATUS_BLOB);
    this.written = text;
    for (const [name, saved] of Object.entries(this.parsePersisted(text))) {
      this.entries.set(name, { identity: saved.identity, status: saved.status, spec: undefined as never });
    }
    await this.reconcileNow(true, resumeReason);
    if (!this.leader) return;
    const before = JSON.stringify(this.routing());
    this.serving = 'entries';
    this.followed = [];
    if (JSON.stringify(this.routing()) !== before) this.deps.onRoutingChange();
  }

  private async follow(): Promise<void> {
    if (this.closed || this.leader) return;
    const text = await this.deps.store.getBlob(ROLLOUT_STATUS_BLOB);
    if (this.leader || text === this.written) return;
    const before = JSON.stringify(this.routing());
    this.written = text;
    this.followed = Object.values(this.parsePersisted(text)).map((s) => s.status)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    // Followers keep canary stats too: they publish them for the leader's analysis (core/shared-subset-stats.ts).
    this.deps.metrics.track?.(this.followed.map((s) => s.service));
    if (JSON.stringify(this.routing()) !== before) this.deps.onRoutingChange();
  }

  private parsePersisted(text: string | undefined): Record<string, { identity: string; status: RolloutStatus }> {
    const out: Record<string, { identity: string; status: RolloutStatus }> = {};
    if (!text) return out;
    try {
      const persisted = JSON.parse(text) as PersistedState;
      for (const [name, saved] of Object.entries(persisted.rollouts ?? {})) {
        const parsed = RolloutStatus.safeParse(saved?.status);
        if (!parsed.success || typeof saved.identity !== 'string') {
          this.deps.log?.warn('ignoring an unreadable persisted rollout status', { rollout: name });
          continue;
        }
        out[name] = { identity: saved.identity, status: parsed.data };
      }
    } catch (err) {
      this.deps.log?.warn('ignoring unreadable persisted rollout statuses', { error: (err as Error).message });
    }
    return out;
  }

  /** Rollout (or HTTPRoute) resources changed: reconcile soon (calls made while one is queued coalesce). */
  schedule(): void {
    if (this.closed || !this.started || !this.leader || this.reconcileQueued) return;
    this.reconcileQueued = true;
    void this.run(async () => {
      this.reconcileQueued = false;
      await this.reconcileNow(false);
    });
  }

  /** Instances changed: a Pending rollout may start (or a canary may be gone). */
  instancesChanged(): void {
    if (!this.leader) return;
    for (const e of this.entries.values()) {
      if (e.status.phase === 'Pending') { this.schedule(); return; }
    }
  }

  /** Resolves when every queued step (reconcile, analysis, action) is done. */
  idle(): Promise<void> {
    return this.chain;
  }

  close(): void {
    this.closed = true;
    // Elected: whatever step is still running must not write the status another control plane now leads.
    if (this.deps.elected) this.leader = false;
    for (const e of this.entries.values()) this.clearTimer(e);
  }

  /** The splits in force (for the compiler): every rollout but Pending ones, first by name per service. */
  routing(): RolloutRouting[] {
    const out: RolloutRouting[] = [];
    if (this.serving === 'followed') {
      for (const s of this.followed) {
        if (s.trafficSplit) out.push({ rollout: s.name, service: s.service, stable: s.stable, canary: s.canary, canaryWeight: s.canaryWeight });
      }
      return out;
    }
    for (const [name, e] of [...this.entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!e.spec || !e.status.trafficSplit) continue;
      out.push({ rollout: name, service: e.status.service, stable: e.status.stable, canary: e.status.canary, canaryWeight: e.status.canaryWeight });
    }
    return out;
  }

  list(): RolloutStatus[] {
    if (this.serving === 'followed') return [...this.followed];
    return [...this.entries.values()].filter((e) => e.spec).map((e) => e.status).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The status of the Rollout of `service` (the first by name when several name it). */
  statusOf(service: string): RolloutStatus | undefined {
    return this.list().find((s) => s.service === service);
  }

  promote(service: string): Promise<RolloutStatus> {
    if (!this.leader) return this.forwarded('promote', service);
    // Leadership may be lost while queued: then forwarded, outside the chain (the answer needs the chain).
    return this.run(async (): Promise<RolloutStatus | undefined> => {
      if (!this.leader) return undefined;
      const [name, e] = this.entryFor(service);
      if (e.status.phase === 'Succeeded') return e.status;
      if (!this.ready(e.spec.service, e.spec.canary)) {
        throw new RolloutActionError(409, 'CONFLICT', `cannot promote Rollout ${name}: no ready instance of ${service} has the canary labels ${labelsText(e.spec.canary)}`);
      }
      this.transition(e, 'Succeeded', e.spec.steps.length - 1, 100, 'promoted by the operator', 'promoted: the canary gets 100% until the Rollout changes or is deleted');
      await this.commit(true);
      return e.status;
    }).then((status) => status ?? this.forwarded('promote', service));
  }

  abort(service: string): Promise<RolloutStatus> {
    if (!this.leader) return this.forwarded('abort', service);
    return this.run(async (): Promise<RolloutStatus | undefined> => {
      if (!this.leader) return undefined;
      const [, e] = this.entryFor(service);
      if (e.status.phase === 'Aborted' || e.status.phase === 'RolledBack') return e.status;
      this.transition(e, 'Aborted', e.status.step, 0, 'aborted by the operator', 'aborted: the canary gets 0% until the Rollout changes or is deleted');
      await this.commit(true);
      return e.status;
    }).then((status) => status ?? this.forwarded('abort', service));
  }

  // ---------------------------------------------------------------- internals

  private forwarded(action: 'promote' | 'abort', service: string): Promise<RolloutStatus> {
    if (!this.list().some((s) => s.service === service)) return Promise.reject(new RolloutActionError(404, 'NOT_FOUND', `no Rollout for service ${service}`));
    if (!this.deps.forward) return Promise.reject(new RolloutActionError(503, 'UNAVAILABLE', `cannot ${action} the Rollout of ${service}: this control plane does not lead the rollouts`));
    return this.deps.forward(action, service);
  }

  private entryFor(service: string): [string, Entry] {
    const found = [...this.entries].filter(([, e]) => e.spec && e.spec.service === service).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))[0];
    if (!found) throw new RolloutActionError(404, 'NOT_FOUND', `no Rollout for service ${service}`);
    return found;
  }

  private run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.chain.then(fn);
    this.chain = result.then(() => undefined, (err: unknown) => {
      if (!(err instanceof RolloutActionError)) this.deps.log?.warn('rollout controller step failed', { error: (err as Error).message });
    });
    return result;
  }

  private ready(service: string, selector: Readonly<Record<string, string>>): boolean {
    return this.deps.instances(service).some((i) => i.ready && matches(i.labels, selector));
  }

  private nowIso(): string {
    return new Date(this.clock.now()).toISOString();
  }

  private async reconcileNow(resuming: boolean, resumeReason = 'after a control-plane restart'): Promise<void> {
    if (this.closed || !this.leader) return;
    const rollouts = (await this.deps.store.listResources('Rollout'))
      .filter((r): r is Rollout => r.kind === 'Rollout').sort(byName);
    const routes = rollouts.length > 0
      ? (await this.deps.store.listResources('HTTPRoute')).filter((r): r is ResourceOf<'HTTPRoute'> => r.kind === 'HTTPRoute')
      : [];
    let routingChanged = false;
    const seen = new Set<string>();
    const now = this.clock.now();
    for (const r of rollouts) {
      const name = r.metadata.name;
      seen.add(name);
      const identity = identityOf(r.spec);
      let e = this.entries.get(name);
      if (e && e.identity !== identity) {
        this.clearTimer(e);
        if (e.status.trafficSplit) routingChanged = true;
        e = undefined;
      }
      if (!e) {
        e = { identity, spec: r.spec, status: this.initialStatus(name, r.spec) };
        this.entries.set(name, e);
        this.deps.log?.info('rollout created', { rollout: name, service: r.spec.service });
      } else {
        const restored = !e.spec;
        e.spec = r.spec;
        const s = e.status;
        s.steps = [...r.spec.steps];
        s.interval = r.spec.interval;
        if (s.step > r.spec.steps.length - 1) s.step = r.spec.steps.length - 1;
        if (s.phase === 'Progressing') {
          const weight = r.spec.steps[s.step]!;
          if (weight !== s.canaryWeight) { s.canaryWeight = weight; routingChanged = true; }
          if (restored && resuming) {
            // The metrics of before the restart are gone: a whole fresh interval before the next analysis.
            s.nextAnalysisAt = new Date(now + parseDuration(r.spec.interval)).toISOString();
            this.record(e, `resumed at step ${s.step} (${s.canaryWeight}%) ${resumeReason}`);
          }
        }
        if (restored) routingChanged ||= s.trafficSplit;
      }
      if (splitApplies(routes, r.spec.service)) delete e.status.warning;
      else {
        const names = routes.filter((x) => x.spec.parentRefs.some((p) => p.name === r.spec.service)).map((x) => x.metadata.name);
        e.status.warning = `no traffic is shifted: no rule of HTTPRoute ${names.join(', ')} sends to ${r.spec.service} without naming a subset; `
          + 'a Rollout splits only backendRefs without a subset (and rules without backendRefs)';
      }
      if (e.status.phase === 'Pending') {
        if (this.deps.instances(r.spec.service).some((i) => i.protocol === 'tcp')) {
          e.status.message = `${r.spec.service} is a tcp service: rollouts need http, http2 or grpc (request metrics and HTTPRoutes); no traffic is split`;
        } else if (this.ready(r.spec.service, r.spec.stable) && this.ready(r.spec.service, r.spec.canary)) {
          this.transition(e, 'Progressing', 0, r.spec.steps[0]!, 'stable and canary instances are ready', '');
          routingChanged = true;
        } else {
          e.status.message = this.pendingMessage(r.spec);
        }
      }
      if (e.status.phase === 'Progressing' && e.timer === undefined) this.scheduleAnalysis(name, e);
    }
    for (const [name, e] of this.entries) {
      if (seen.has(name)) continue;
      this.clearTimer(e);
      this.entries.delete(name);
      if (e.spec && e.status.trafficSplit) routingChanged = true;
      if (e.spec) this.deps.log?.info('rollout deleted: its split is removed', { rollout: name, service: e.status.service });
    }
    this.deps.metrics.track?.([...this.entries.values()].map((e) => e.status.service));
    await this.commit(routingChanged);
  }

  private initialStatus(name: string, spec: Rollout['spec']): RolloutStatus {
    const at = this.nowIso();
    return {
      name, service: spec.service, stable: { ...spec.stable }, canary: { ...spec.canary }, steps: [...spec.steps], interval: spec.interval,
      phase: 'Pending', step: 0, canaryWeight: 0, trafficSplit: false, message: this.pendingMessage(spec), holds: 0,
      startedAt: at, updatedAt: at, history: [{ at, phase: 'Pending', step: 0, canaryWeight: 0, reason: 'created' }],
    };
  }

  private pendingMessage(spec: Rollout['spec']): string {
    const missing: string[] = [];
    if (!this.ready(spec.service, spec.stable)) missing.push(`stable (${labelsText(spec.stable)})`);
    if (!this.ready(spec.service, spec.canary)) missing.push(`canary (${labelsText(spec.canary)})`);
    return missing.length > 0
      ? `waiting for a ready instance of ${spec.service}: ${missing.join(' and ')}; no traffic is split yet`
      : 'starting';
  }

  /** Moves to a phase/step/weight, with a history event; schedules or clears the analysis timer. */
  private transition(e: Entry, phase: RolloutPhase, step: number, weight: number, reason: string, message: string): void {
    const s = e.status;
    s.phase = phase;
    s.step = step;
    s.canaryWeight = weight;
    s.trafficSplit = phase !== 'Pending';
    s.holds = 0;
    this.clearTimer(e);
    if (phase === 'Progressing') {
      s.nextAnalysisAt = new Date(this.clock.now() + parseDuration(e.spec.interval)).toISOString();
      s.message = message || `step ${step + 1} of ${e.spec.steps.length}: canary ${weight}%, next analysis at ${s.nextAnalysisAt}`;
      this.scheduleAnalysis(s.name, e);
    } else {
      delete s.nextAnalysisAt;
      s.message = message;
    }
    this.record(e, reason);
    this.deps.log?.info('rollout transition', { rollout: s.name, service: s.service, phase, step, canaryWeight: weight, reason });
  }

  private record(e: Entry, reason: string): void {
    const s = e.status;
    s.updatedAt = this.nowIso();
    s.history.push({ at: s.updatedAt, phase: s.phase, step: s.step, canaryWeight: s.canaryWeight, reason });
    if (s.history.length > ROLLOUT_HISTORY_MAX) s.history.splice(0, s.history.length - ROLLOUT_HISTORY_MAX);
  }

  private clearTimer(e: Entry): void {
    if (e.timer !== undefined) this.clock.clearTimeout(e.timer);
    e.timer = undefined;
  }

  private scheduleAnalysis(name: string, e: Entry): void {
    this.clearTimer(e);
    if (this.closed) return;
    const due = e.status.nextAnalysisAt ? Date.parse(e.status.nextAnalysisAt) : this.clock.now() + parseDuration(e.spec.interval);
    const delay = Math.max(0, due - this.clock.now());
    e.timer = this.clock.setTimeout(() => {
      if (this.entries.get(name) !== e) return;
      e.timer = undefined;
      void this.run(() => this.analyse(name, e));
    }, delay);
  }

  private async analyse(name: string, e: Entry): Promise<void> {
    if (this.closed || !this.leader || this.entries.get(name) !== e || e.status.phase !== 'Progressing') return;
    const spec = e.spec;
    const s = e.status;
    const now = this.clock.now();
    const at = new Date(now).toISOString();
    const windowMs = parseDuration(spec.interval);
    if (!this.ready(spec.service, spec.canary)) {
      s.lastAnalysis = { at, windowMs, requests: 0, result: 'failed', reason: `no ready instance of ${spec.service} has the canary labels ${labelsText(spec.canary)}` };
      this.transition(e, 'RolledBack', s.step, 0, `rolled back: ${s.lastAnalysis.reason}`, `rolled back at step ${s.step + 1}: ${s.lastAnalysis.reason}; the canary gets 0%`);
      await this.commit(true);
      return;
    }
    const verdict = evaluateAnalysis(spec, this.deps.metrics.query({ service: spec.service, selector: spec.canary, windowMs, now }), windowMs, at);
    s.lastAnalysis = verdict;
    if (verdict.result === 'failed') {
      this.transition(e, 'RolledBack', s.step, 0, `rolled back: ${verdict.reason}`, `rolled back at step ${s.step + 1}: ${verdict.reason}; the canary gets 0%`);
      await this.commit(true);
      return;
    }
    if (verdict.result === 'held') {
      const holds = s.holds + 1;
      if (holds >= MAX_CONSECUTIVE_HOLDS) {
        const reason = `${holds} analyses in a row without enough requests (${verdict.reason})`;
        this.transition(e, 'RolledBack', s.step, 0, `rolled back: ${reason}`, `rolled back at step ${s.step + 1}: ${reason}; the canary gets 0%`);
        s.holds = holds;
        await this.commit(true);
        return;
      }
      s.holds = holds;
      s.nextAnalysisAt = new Date(now + windowMs).toISOString();
      s.updatedAt = at;
      s.message = `step ${s.step + 1} of ${spec.steps.length} held (${holds} of ${MAX_CONSECUTIVE_HOLDS}): ${verdict.reason}`;
      this.scheduleAnalysis(name, e);
      await this.commit(false);
      return;
    }
    if (s.step >= spec.steps.length - 1) {
      this.transition(e, 'Succeeded', s.step, 100, `analysis passed at the last step: ${verdict.reason}`,
        'promoted: every step passed; the canary gets 100% until the Rollout changes or is deleted');
    } else {
      const next = s.step + 1;
      this.transition(e, 'Progressing', next, spec.steps[next]!, `analysis passed: ${verdict.reason}`, '');
    }
    await this.commit(true);
  }

  /** Persists every status, then (when a split changed) asks for a new config version. */
  private async commit(routingChanged: boolean): Promise<void> {
    // Leadership lost while this step ran: the new leader owns the status now.
    if (!this.leader) return;
    const state: PersistedState = { rollouts: {} };
    for (const [name, e] of this.entries) state.rollouts[name] = { identity: e.identity, status: e.status };
    const text = JSON.stringify(state);
    // Unchanged (a reconcile for an HTTPRoute change that changed nothing here): no write.
    if (text !== this.written) {
      if (!this.deps.elected) {
        await this.deps.store.putBlob(ROLLOUT_STATUS_BLOB, text);
      } else if (!await this.deps.store.putBlobAsLeader(ROLLOUT_LEADERSHIP, ROLLOUT_STATUS_BLOB, text)) {
        // Fenced: another control plane leads now (this one's lease ended); its status stands.
        this.deps.log?.warn('not leading the rollouts any more: the status change is dropped');
        this.setLeader(false);
        throw new RolloutActionError(503, 'UNAVAILABLE', 'this control plane stopped leading the rollouts meanwhile: nothing was changed; try again');
      }
      this.written = text;
    }
    if (routingChanged) this.deps.onRoutingChange();
  }
}
