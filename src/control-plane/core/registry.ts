/**
 * The service registry: proxy instances, connected or disconnected.
 *
 * An instance whose stream closes without a goodbye is kept (marked draining) for a grace period, then removed;
 * a reconnect with the same id cancels the removal. Instances are persisted, so after a control-plane restart
 * the previous instances are kept (as disconnected, grace timer started) until their proxies reconnect:
 * traffic keeps flowing across a restart.
 *
 * Memory is the source of truth for reads and is updated synchronously; persistence follows in order.
 *
 * With a shared store (etcd, several control planes), each proxy streams from one control plane. This registry
 * holds its own connections and mirrors the others' from the store: a change another control plane made (an
 * instance record, or a `live` mark: which control plane holds the stream) makes it re-read that instance
 * (`resync`) and take the store's state. An instance live on another control plane is connected; one whose
 * control plane died (its lease expired, so its live mark vanished) is kept like after a restart (restored,
 * still receiving traffic) for the grace period, then removed unless its proxy reconnected somewhere. The
 * store refuses to mark disconnected or delete an instance another control plane holds (the proxy moved
 * there); a refused write is followed by a resync too.
 */
import { EventEmitter } from 'node:events';
import type { InstanceInfo } from '../../api/schema/xds.js';
import type { InstanceRecord, Store, StoreChange, StoredInstance } from './ports.js';
import type { ServiceDirectory } from './resource-service.js';

export const DEFAULT_INSTANCE_GRACE_MS = 15_000;

export interface InstanceState extends InstanceRecord {
  connected: boolean;
  /**
   * Restored from the store after a control-plane restart and not reconnected yet. Such an instance is
   * not draining: its proxy most likely still serves (only the control plane restarted), so traffic keeps
   * flowing to it; it is removed if it does not reconnect within the grace period.
   */
  restored?: boolean;
  /** Shared stores: connected, but its stream is on another control plane. */
  elsewhere?: boolean;
}

export interface RegistryOptions {
  graceMs?: number;
  now?: () => Date;
  onError?: (err: unknown) => void;
  /**
   * Wait this long after a change before writing its batch (default 0: right after the current turn).
   * The control plane uses a short delay so a burst of registrations makes one write, and the config push
   * of a change goes out before the store serialises its state.
   */
  persistDelayMs?: number;
}

interface Entry {
  state: InstanceState;
  /**
   * Increases on every connect; a disconnect for an older lease is ignored (the instance reconnected).
   * 0 when this control plane holds no stream of the instance (restored, or live on another control plane).
   */
  lease: number;
  timer?: ReturnType<typeof setTimeout>;
}

/** A failed store write is retried after this long (the store may be briefly unavailable). */
export const PERSIST_RETRY_MS = 1000;

export interface RegistryEvents {
  change: [];
  removed: [id: string, service: string];
}

export class Registry extends EventEmitter<RegistryEvents> implements ServiceDirectory {
  readonly graceMs: number;
  private readonly persistDelayMs: number;
  private readonly store: Store;
  private readonly now: () => Date;
  private readonly onError: (err: unknown) => void;
  private readonly entries = new Map<string, Entry>();
  private nextLease = 1;
  private persistChain: Promise<void> = Promise.resolve();
  private readonly dirty = new Map<string, InstanceRecord | null>();
  private flushQueued = false;
  private closed = false;
  private unwatch?: () => void;
  /** Instances to re-read from the store (shared stores), and whether a pass is running. */
  private readonly toResync = new Set<string>();
  private resyncing?: Promise<void>;

  constructor(store: Store, opts: RegistryOptions = {}) {
    super();
    this.store = store;
    this.graceMs = opts.graceMs ?? DEFAULT_INSTANCE_GRACE_MS;
    this.persistDelayMs = opts.persistDelayMs ?? 0;
    this.now = opts.now ?? (() => new Date());
    this.onError = opts.onError ?? (() => undefined);
  }

  /**
   * Restores persisted instances as disconnected and starts their grace timers; with a shared store, those
   * live on another control plane are connected, and the other control planes' changes are followed from now on.
   */
  async load(): Promise<void> {
    if (this.store.shared && !this.unwatch) this.unwatch = this.store.watch((change) => this.onStoreChange(change));
    const stored = await this.store.listStoredInstances();
    for (const s of stored) this.adopt(s.record.info.id, s);
    if (stored.length > 0) this.emit('change');
  }

  /** Takes the store's state of an instance this control plane holds no stream of. */
  private adopt(id: string, stored: StoredInstance): void {
    const previous = this.entries.get(id);
    const live = stored.liveOn !== undefined && stored.liveOn !== this.store.sessionId;
    let state: InstanceState;
    if (live) {
      const { disconnectedAt: _d, ...record } = stored.record;
      state = { ...record, connected: true, elsewhere: true };
    } else if (previous && !previous.state.connected) {
      // Already counting down its grace period: keep that clock.
      state = { ...stored.record, connected: false, disconnectedAt: previous.state.disconnectedAt ?? this.now().toISOString(), ...(previous.state.restored ? { restored: true } : {}) };
    } else {
      // Its control plane is gone (or this one restarted). Disconnected from a running control plane: draining;
      // otherwise its proxy most likely still serves: restored.
      state = stored.record.disconnectedAt !== undefined
        ? { ...stored.record, connected: false }
        : { ...stored.record, connected: false, restored: true, disconnectedAt: this.now().toISOString() };
    }
    // The same entry object: a running grace timer checks it is still the current one.
    const entry: Entry = previous ?? { state, lease: 0 };
    entry.state = state;
    entry.lease = 0;
    this.entries.set(id, entry);
    if (live) {
      if (entry.timer) clearTimeout(entry.timer);
      delete entry.timer;
    } else if (!entry.timer) {
      this.scheduleRemoval(id, entry);
    }
  }

  /** Registers (or re-registers) a connected instance; returns the lease to pass to disconnect(). */
  connect(info: InstanceInfo): number {
    const at = this.now().toISOString();
    const existing = this.entries.get(info.id);
    if (existing?.timer) clearTimeout(existing.timer);
    const lease = this.nextLease++;
    const state: InstanceState = {
      info: { ...info, labels: { ...info.labels } },
      registeredAt: existing?.state.registeredAt ?? at,
      connectedAt: at,
      connected: true,
    };
    this.entries.set(info.id, { state, lease });
    this.persist(state);
    this.emit('change');
    return lease;
  }

  /** The instance's stream closed without goodbye: keep it (draining) for the grace period. */
  disconnect(id: string, lease?: number): void {
    const entry = this.entries.get(id);
    if (!entry || !entry.state.connected) return;
    if (lease !== undefined && lease !== entry.lease) return;
    const { restored: _restored, elsewhere: _elsewhere, ...rest } = entry.state;
    entry.state = { ...rest, connected: false, disconnectedAt: this.now().toISOString() };
    this.persist(entry.state);
    this.scheduleRemoval(id, entry);
    this.emit('change');
  }

  /** Goodbye: remove at once. With a lease, only if it is still the current connection. */
  deregister(id: string, lease?: number): boolean {
    const entry = this.entries.get(id);
    if (!entry) return false;
    if (lease !== undefined && lease !== entry.lease) return false;
    this.remove(id);
    return true;
  }

  get(id: string): InstanceState | undefined {
    const entry = this.entries.get(id);
    return entry ? cloneState(entry.state) : undefined;
  }

  list(): InstanceState[] {
    return [...this.entries.values()].map((e) => cloneState(e.state))
      .sort((a, b) => (a.info.service === b.info.service ? cmp(a.info.id, b.info.id) : cmp(a.info.service, b.info.service)));
  }

  /**
   * The current states without copying them (for the snapshot compiler, once per config version): a state
   * object is never changed in place — every change replaces it — so the array is a consistent view.
   * Read-only for the caller.
   */
  states(): readonly InstanceState[] {
    const out: InstanceState[] = [];
    for (const e of this.entries.values()) out.push(e.state);
    return out;
  }

  instancesOf(service: string): InstanceState[] {
    return this.list().filter((s) => s.info.service === service);
  }

  /** Registered services (with at least one instance, connected or in grace), in name order. */
  serviceNames(): string[] {
    return [...new Set([...this.entries.values()].map((e) => e.state.info.service))].sort(cmp);
  }

  hasService(name: string): boolean {
    for (const e of this.entries.values()) if (e.state.info.service === name) return true;
    return false;
  }

  /** Resolves once every change so far is persisted. */
  flush(): Promise<void> {
    return this.persistChain;
  }

  /** Stops the grace timers (state stays persisted). */
  async close(): Promise<void> {
    this.closed = true;
    this.unwatch?.();
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
    await this.persistChain;
    await this.resyncing;
  }

  // ---------------------------------------------------------------- shared stores
  private onStoreChange(change: StoreChange): void {
    if (this.closed) return;
    if (change.type === 'reset') {
      for (const id of this.entries.keys()) this.toResync.add(id);
      void this.store.listStoredInstances().then((all) => {
        for (const s of all) this.toResync.add(s.record.info.id);
        this.startResync();
      }).catch((err) => this.onError(err));
      return;
    }
    if ((change.type === 'instance' || change.type === 'live') && change.remote) {
      this.toResync.add(change.id);
      this.startResync();
    }
  }

  private startResync(): void {
    if (this.resyncing || this.closed) return;
    this.resyncing = (async () => {
      while (this.toResync.size > 0 && !this.closed) {
        // Own writes first: the store then answers with them in place.
        await this.persistChain;
        const ids = [...this.toResync];
        this.toResync.clear();
        const stored = await Promise.all(ids.map((id) => this.store.getInstance(id)));
        let changed = false;
        ids.forEach((id, i) => { if (this.reconcile(id, stored[i])) changed = true; });
        if (changed) this.emit('change');
      }
    })().catch((err) => {
      this.onError(err);
      // The store is unreachable: try again later.
      const timer = setTimeout(() => this.startResync(), PERSIST_RETRY_MS);
      (timer as { unref?: () => void }).unref?.();
    }).finally(() => { this.resyncing = undefined; });
  }

  /** Makes memory agree with the store for one instance; returns true when the registry changed. */
  private reconcile(id: string, stored: StoredInstance | undefined): boolean {
    const entry = this.entries.get(id);
    if (entry && entry.lease > 0 && entry.state.connected) {
      // This control plane holds the instance's stream.
      if (stored?.liveOn !== undefined && stored.liveOn !== this.store.sessionId) {
        // The proxy moved to another control plane (this stream is stale and will close): follow the store.
        const before = JSON.stringify(entry.state);
        this.adopt(id, stored);
        return JSON.stringify(this.entries.get(id)!.state) !== before;
      }
      // Removed or not marked live while this control plane holds the stream: write it again.
      if (!stored || stored.liveOn === undefined) this.persist(entry.state);
      return false;
    }
    if (!stored) {
      if (!entry) return false;
      if (entry.timer) clearTimeout(entry.timer);
      this.entries.delete(id);
      this.emit('removed', id, entry.state.info.service);
      return true;
    }
    if (stored.liveOn === this.store.sessionId) {
      // Marked live here but no stream here (a write of its disconnect was lost): write the disconnect again.
      if (entry) this.persist(entry.state);
      return false;
    }
    const before = entry ? JSON.stringify(entry.state) : undefined;
    this.adopt(id, stored);
    return JSON.stringify(this.entries.get(id)!.state) !== before;
  }

  private scheduleRemoval(id: string, entry: Entry): void {
    if (entry.timer) clearTimeout(entry.timer);
    const timer = setTimeout(() => {
      const current = this.entries.get(id);
      if (current === entry && !current.state.connected) this.remove(id);
    }, this.graceMs);
    (timer as { unref?: () => void }).unref?.();
    entry.timer = timer;
  }

  private remove(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    if (entry.timer) clearTimeout(entry.timer);
    this.entries.delete(id);
    this.markDirty(id, null);
    this.emit('removed', id, entry.state.info.service);
    this.emit('change');
  }

  private persist(state: InstanceState): void {
    const { connected: _connected, restored: _restored, elsewhere: _elsewhere, ...record } = cloneState(state);
    this.markDirty(record.info.id, record);
  }

  /**
   * Persistence is batched: changes are collected by instance id (the last one wins) and written together
   * once the previous batch is durable — with the embedded store one write of the whole state per batch,
   * not per change (10,000 instances make that state megabytes). Order per instance is kept. A batch that
   * fails (the store is unreachable) is written again later, unless a newer change of the same instance came.
   */
  private markDirty(id: string, record: InstanceRecord | null): void {
    if (this.closed) return;
    this.dirty.set(id, record);
    this.scheduleFlush(this.persistDelayMs);
  }

  private scheduleFlush(delay: number): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    this.persistChain = this.persistChain.then(() => (delay > 0 ? new Promise<void>((r) => setTimeout(r, delay)) : undefined)).then(async () => {
      this.flushQueued = false;
      const batch = [...this.dirty];
      this.dirty.clear();
      // Concurrent calls: the store shares one write among them.
      const results = await Promise.allSettled(batch.map(([key, rec]) => (rec ? this.store.putInstance(rec) : this.store.deleteInstance(key))));
      let failure: unknown;
      results.forEach((r, i) => {
        const [id, rec] = batch[i]!;
        if (r.status === 'rejected') {
          failure ??= r.reason;
          if (!this.dirty.has(id) && !this.closed) this.dirty.set(id, rec);
        } else if (r.value === false && this.store.shared) {
          // Refused (live on another control plane) or already gone: take the store's state.
          this.toResync.add(id);
        }
      });
      if (failure !== undefined) {
        this.onError(failure);
        if (this.dirty.size > 0 && !this.closed) {
          const retry = setTimeout(() => { if (!this.closed) this.scheduleFlush(0); }, PERSIST_RETRY_MS);
          (retry as { unref?: () => void }).unref?.();
        }
      }
      if (this.toResync.size > 0) setImmediate(() => this.startResync());
    }).catch((err) => this.onError(err));
  }
}

function cloneState(s: InstanceState): InstanceState {
  return { ...s, info: { ...s.info, labels: { ...s.info.labels } } };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
