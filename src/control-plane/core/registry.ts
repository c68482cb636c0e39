/**
 * The service registry: proxy instances, connected or disconnected.
 *
 * An instance whose stream closes without a goodbye is kept (marked draining) for a grace period, then removed;
 * a reconnect with the same id cancels the removal. Instances are persisted, so after a control-plane restart
 * the previous instances are kept (as disconnected, grace timer started) until their proxies reconnect:
 * traffic keeps flowing across a restart.
 *
 * Memory is the source of truth for reads and is updated synchronously; persistence follows in order.
 */
import { EventEmitter } from 'node:events';
import type { InstanceInfo } from '../../api/schema/xds.js';
import type { InstanceRecord, Store } from './ports.js';
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
  /** Increases on every connect; a disconnect for an older lease is ignored (the instance reconnected). */
  lease: number;
  timer?: ReturnType<typeof setTimeout>;
}

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

  constructor(store: Store, opts: RegistryOptions = {}) {
    super();
    this.store = store;
    this.graceMs = opts.graceMs ?? DEFAULT_INSTANCE_GRACE_MS;
    this.persistDelayMs = opts.persistDelayMs ?? 0;
    this.now = opts.now ?? (() => new Date());
    this.onError = opts.onError ?? (() => undefined);
  }

  /** Restores persisted instances as disconnected and starts their grace timers. */
  async load(): Promise<void> {
    const records = await this.store.listInstances();
    const at = this.now().toISOString();
    for (const record of records) {
      const state: InstanceState = { ...record, connected: false, restored: true, disconnectedAt: at };
      const entry: Entry = { state, lease: 0 };
      this.entries.set(record.info.id, entry);
      this.scheduleRemoval(record.info.id, entry);
    }
    if (records.length > 0) this.emit('change');
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
    const { restored: _restored, ...rest } = entry.state;
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
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
    await this.persistChain;
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
    const { connected: _connected, restored: _restored, ...record } = cloneState(state);
    this.markDirty(record.info.id, record);
  }

  /**
   * Persistence is batched: changes are collected by instance id (the last one wins) and written together
   * once the previous batch is durable — with the embedded store one write of the whole state per batch,
   * not per change (10,000 instances make that state megabytes). Order per instance is kept.
   */
  private markDirty(id: string, record: InstanceRecord | null): void {
    if (this.closed) return;
    this.dirty.set(id, record);
    if (this.flushQueued) return;
    this.flushQueued = true;
    const delay = this.persistDelayMs;
    this.persistChain = this.persistChain.then(() => (delay > 0 ? new Promise<void>((r) => setTimeout(r, delay)) : undefined)).then(() => {
      this.flushQueued = false;
      const batch = [...this.dirty];
      this.dirty.clear();
      // Concurrent calls: the store shares one write among them.
      return Promise.all(batch.map(([key, rec]) => (rec ? this.store.putInstance(rec) : this.store.deleteInstance(key).then(() => undefined))))
        .then(() => undefined);
    }).catch((err) => this.onError(err));
  }
}

function cloneState(s: InstanceState): InstanceState {
  return { ...s, info: { ...s.info, labels: { ...s.info.labels } } };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
