/**
 * promote/abort on any control plane sharing a store: a follower cannot change a Rollout's status itself (the
 * leader writes it, core/rollouts.ts), so it forwards the action through the store.
 *
 *   follower: putSessionValue('rollout-command', {id, action, service})      (its own key, on its session)
 *   leader:   sees the put (store watch), runs the action, then
 *             putSessionValue('rollout-result', {FOLLOWER_SESSION: {id, ok, status | error}, ...})
 *   follower: sees the leader's put, reloads the status blob (so its API shows the change), answers the caller
 *
 * A follower without an answer within `timeoutMs` (no leader right now, or it died meanwhile) answers 503
 * with a clear message; the action may still happen, which `trellis rollout status` shows.
 */
import { randomUUID } from 'node:crypto';
import type { RolloutStatus } from '../../api/schema/rollout.js';
import type { Store, StoreChange } from './ports.js';
import { RolloutActionError } from './rollouts.js';

export const ROLLOUT_COMMAND_SECTION = 'rollout-command';
export const ROLLOUT_RESULT_SECTION = 'rollout-result';
/** How long a forwarded action waits for the leader (default). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;
/** Most results the leader keeps (one per requesting control plane). */
const MAX_RESULTS = 64;

type Action = 'promote' | 'abort';
interface Command { id: string; action: Action; service: string }
type Result = { id: string; ok: true; status: RolloutStatus } | { id: string; ok: false; error: { status: 404 | 409 | 503; code: 'NOT_FOUND' | 'CONFLICT' | 'UNAVAILABLE'; message: string } };

export interface RolloutCommandTarget {
  readonly isLeader: boolean;
  promote(service: string): Promise<RolloutStatus>;
  abort(service: string): Promise<RolloutStatus>;
  /** Reloads the stored status (a follower), resolving when done. */
  statusChanged(): Promise<void>;
}

export interface RolloutCommandsDeps {
  store: Store;
  controller: RolloutCommandTarget;
  timeoutMs?: number;
  log?: { warn(msg: string, fields?: Record<string, unknown>): void };
}

export class RolloutCommands {
  private readonly pending = new Map<string, { resolve(s: RolloutStatus): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  /** Leader: the last command id run per requesting session, and its result. */
  private readonly results = new Map<string, Result>();
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly deps: RolloutCommandsDeps) {}

  /** Follower: sends the action to the leader and waits for its result. */
  async forward(action: Action, service: string): Promise<RolloutStatus> {
    const id = randomUUID();
    const timeoutMs = this.deps.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const answered = new Promise<RolloutStatus>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RolloutActionError(503, 'UNAVAILABLE', `no answer from the control plane leading the rollouts within ${timeoutMs} ms: the ${action} of ${service} may still happen (check \`trellis rollout status ${service}\`) or try again`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
    try {
      await this.deps.store.putSessionValue(ROLLOUT_COMMAND_SECTION, JSON.stringify({ id, action, service } satisfies Command));
    } catch (err) {
      const p = this.pending.get(id);
      if (p) { clearTimeout(p.timer); this.pending.delete(id); }
      throw new RolloutActionError(503, 'UNAVAILABLE', `cannot send the ${action} of ${service} to the leading control plane: ${(err as Error).message}`);
    }
    return answered;
  }

  /** Every store change goes here (main.ts). */
  onChange(change: StoreChange): void {
    if (change.type !== 'session-value' || change.op !== 'put') return;
    if (change.section === ROLLOUT_COMMAND_SECTION && this.deps.controller.isLeader) {
      this.serialize(() => this.execute(change.session));
    } else if (change.section === ROLLOUT_RESULT_SECTION && this.pending.size > 0) {
      this.serialize(() => this.collect(change.session));
    }
  }

  close(): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new RolloutActionError(503, 'UNAVAILABLE', 'the control plane is shutting down'));
      this.pending.delete(id);
    }
  }

  private serialize(fn: () => Promise<void>): void {
    this.chain = this.chain.then(fn).catch((err: unknown) => this.deps.log?.warn('rollout command step failed', { error: (err as Error).message }));
  }

  private async execute(session: string): Promise<void> {
    const cmd = parseCommand(await this.deps.store.getSessionValue(ROLLOUT_COMMAND_SECTION, session));
    if (!cmd || this.results.get(session)?.id === cmd.id || !this.deps.controller.isLeader) return;
    let result: Result;
    try {
      const status = await (cmd.action === 'promote' ? this.deps.controller.promote(cmd.service) : this.deps.controller.abort(cmd.service));
      result = { id: cmd.id, ok: true, status };
    } catch (err) {
      result = err instanceof RolloutActionError
        ? { id: cmd.id, ok: false, error: { status: err.status, code: err.code, message: err.message } }
        : { id: cmd.id, ok: false, error: { status: 503, code: 'UNAVAILABLE', message: (err as Error).message } };
    }
    this.results.delete(session);
    this.results.set(session, result);
    while (this.results.size > MAX_RESULTS) this.results.delete(this.results.keys().next().value as string);
    await this.deps.store.putSessionValue(ROLLOUT_RESULT_SECTION, JSON.stringify(Object.fromEntries(this.results)));
  }

  private async collect(leaderSession: string): Promise<void> {
    const text = await this.deps.store.getSessionValue(ROLLOUT_RESULT_SECTION, leaderSession);
    if (!text) return;
    let mine: Result | undefined;
    try { mine = (JSON.parse(text) as Record<string, Result>)[this.deps.store.sessionId]; } catch { return; }
    const p = mine && typeof mine.id === 'string' ? this.pending.get(mine.id) : undefined;
    if (!mine || !p) return;
    this.pending.delete(mine.id);
    clearTimeout(p.timer);
    // The leader wrote the status before its result: reload it so this API shows the change from now on.
    await this.deps.controller.statusChanged().catch(() => undefined);
    if (mine.ok) p.resolve(mine.status);
    else p.reject(new RolloutActionError(mine.error.status, mine.error.code, mine.error.message));
  }
}

function parseCommand(text: string | undefined): Command | undefined {
  if (!text) return undefined;
  try {
    const c = JSON.parse(text) as Partial<Command>;
    if (typeof c.id !== 'string' || (c.action !== 'promote' && c.action !== 'abort') || typeof c.service !== 'string' || c.service.length > 253) return undefined;
    return { id: c.id, action: c.action, service: c.service };
  } catch {
    return undefined;
  }
}
