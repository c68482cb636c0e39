/**
 * The embedded Store: the whole state in one JSON document under the data dir (`store.json`, mode 0600
 * because it holds the CA key and the token-signing key). Every write replaces the file atomically
 * (temporary file + fsync + rename), so a crash leaves either the old or the new state, never a torn one.
 * A `store.lock` file holding the owner's pid keeps two control planes off the same data dir.
 */
import { promises as fsp, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Kind, Resource } from '../../../api/schema/resources.js';
import { resourceKey } from '../../../api/schema/resources.js';
import type { BlobOptions, InstanceRecord, ResourceRef, Store, StoreChange, StoredInstance } from '../../core/ports.js';

interface State {
  format: 1;
  resources: Record<string, Resource>;
  instances: Record<string, InstanceRecord>;
  blobs: Record<string, string>;
  counters: Record<string, number>;
}

export interface EmbeddedStoreOptions {
  /** fsync the file and the directory on every write (default true). */
  fsync?: boolean;
  /** Take the data-dir lock (default true). */
  lock?: boolean;
}

const STORE_FILE = 'store.json';
const LOCK_FILE = 'store.lock';

function emptyState(): State {
  return { format: 1, resources: {}, instances: {}, blobs: {}, counters: {} };
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

export class EmbeddedStore implements Store {
  /** One control plane per data dir (store.lock): nobody else writes. */
  readonly shared = false;
  readonly sessionId = 'embedded';
  readonly dir: string;
  private advertised?: string;
  private readonly sessionValues = new Map<string, string>();
  private state: State;
  private readonly fsync: boolean;
  private readonly listeners = new Set<(change: StoreChange) => void>();
  private pending: Promise<void> | null = null;
  private chain: Promise<void> = Promise.resolve();
  private lockHeld: boolean;
  private closed = false;

  private constructor(dir: string, state: State, opts: EmbeddedStoreOptions, lockHeld: boolean) {
    this.dir = dir;
    this.state = state;
    this.fsync = opts.fsync ?? true;
    this.lockHeld = lockHeld;
  }

  /** Opens (creating when needed) the store under `dir`. */
  static async open(dir: string, opts: EmbeddedStoreOptions = {}): Promise<EmbeddedStore> {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const lock = opts.lock ?? true;
    if (lock) await acquireLock(join(dir, LOCK_FILE));
    try {
      const state = await readState(join(dir, STORE_FILE));
      return new EmbeddedStore(dir, state, opts, lock);
    } catch (err) {
      if (lock) await fsp.rm(join(dir, LOCK_FILE), { force: true });
      throw err;
    }
  }

  // ---------- resources
  async listResources(kind?: Kind): Promise<Resource[]> {
    return Object.values(this.state.resources)
      .filter((r) => !kind || r.kind === kind)
      .sort((a, b) => (a.kind === b.kind ? cmp(a.metadata.name, b.metadata.name) : cmp(a.kind, b.kind)))
      .map(clone);
  }

  async getResource(kind: Kind, name: string): Promise<Resource | undefined> {
    const r = this.state.resources[`${kind}/${name}`];
    return r ? clone(r) : undefined;
  }

  async writeResources(puts: Resource[], deletes: ResourceRef[] = []): Promise<void> {
    this.assertOpen();
    const previous = new Map<string, Resource | undefined>();
    const remember = (key: string) => { if (!previous.has(key)) previous.set(key, this.state.resources[key]); };
    for (const r of puts) { const key = resourceKey(r); remember(key); this.state.resources[key] = clone(r); }
    for (const d of deletes) { const key = `${d.kind}/${d.name}`; remember(key); delete this.state.resources[key]; }
    try {
      await this.persist();
    } catch (err) {
      for (const [key, value] of previous) {
        if (value) this.state.resources[key] = value; else delete this.state.resources[key];
      }
      throw err;
    }
    for (const r of puts) this.emit({ type: 'resource', kind: r.kind, name: r.metadata.name, op: 'put' });
    for (const d of deletes) this.emit({ type: 'resource', kind: d.kind, name: d.name, op: 'delete' });
  }

  async deleteResource(kind: Kind, name: string): Promise<boolean> {
    this.assertOpen();
    const key = `${kind}/${name}`;
    const old = this.state.resources[key];
    if (!old) return false;
    delete this.state.resources[key];
    try {
      await this.persist();
    } catch (err) {
      this.state.resources[key] = old;
      throw err;
    }
    this.emit({ type: 'resource', kind, name, op: 'delete' });
    return true;
  }

  // ---------- instances
  async listInstances(): Promise<InstanceRecord[]> {
    return Object.values(this.state.instances).map(clone);
  }

  async listStoredInstances(): Promise<StoredInstance[]> {
    return Object.values(this.state.instances).map((record) => ({ record: clone(record) }));
  }

  async getInstance(id: string): Promise<StoredInstance | undefined> {
    const record = this.state.instances[id];
    return record ? { record: clone(record) } : undefined;
  }

  async putInstance(record: InstanceRecord): Promise<boolean> {
    this.assertOpen();
    this.state.instances[record.info.id] = clone(record);
    await this.persist();
    this.emit({ type: 'instance', id: record.info.id, op: 'put', remote: false });
    return true;
  }

  async deleteInstance(id: string): Promise<boolean> {
    this.assertOpen();
    if (!this.state.instances[id]) return false;
    delete this.state.instances[id];
    await this.persist();
    this.emit({ type: 'instance', id, op: 'delete', remote: false });
    return true;
  }

  // ---------- blobs and counters
  async getBlob(key: string): Promise<string | undefined> {
    return this.state.blobs[key];
  }

  async putBlob(key: string, value: string, _opts?: BlobOptions): Promise<void> {
    this.assertOpen();
    this.state.blobs[key] = value;
    await this.persist();
    this.emit({ type: 'blob', key });
  }

  async putBlobIfAbsent(key: string, value: string, opts?: BlobOptions): Promise<string> {
    const existing = this.state.blobs[key];
    if (existing !== undefined) return existing;
    await this.putBlob(key, value, opts);
    return value;
  }

  async increment(key: string, by = 1): Promise<number> {
    this.assertOpen();
    const next = (this.state.counters[key] ?? 0) + by;
    this.state.counters[key] = next;
    await this.persist();
    return next;
  }

  async getCounter(key: string): Promise<number> {
    return this.state.counters[key] ?? 0;
  }

  // ---------- the control plane (only one per data dir)
  async advertise(xdsAddress: string): Promise<void> {
    this.advertised = xdsAddress;
  }

  async controlPlaneAddresses(): Promise<string[]> {
    return this.advertised ? [this.advertised] : [];
  }

  // ---------- leadership and session values (one control plane: it leads; values live in memory)
  campaign(_name: string, onChange: (leader: boolean) => void): () => void {
    let active = true;
    queueMicrotask(() => { if (active && !this.closed) onChange(true); });
    return () => { active = false; };
  }

  async putBlobAsLeader(_leadership: string, key: string, value: string): Promise<boolean> {
    await this.putBlob(key, value);
    return true;
  }

  async putSessionValue(section: string, value: string): Promise<void> {
    this.assertOpen();
    this.sessionValues.set(section, value);
    this.emit({ type: 'session-value', section, session: this.sessionId, op: 'put' });
  }

  async getSessionValue(section: string, session: string): Promise<string | undefined> {
    return session === this.sessionId ? this.sessionValues.get(section) : undefined;
  }

  // ---------- watch
  watch(listener: (change: StoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
    this.listeners.clear();
    if (this.lockHeld) {
      this.lockHeld = false;
      await fsp.rm(join(this.dir, LOCK_FILE), { force: true });
    }
  }

  // ---------- internals
  private emit(change: StoreChange): void {
    for (const l of this.listeners) {
      try { l(change); } catch { /* a listener's failure is its own */ }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }

  /** Schedules a write of the whole state; concurrent callers share the next write. */
  private persist(): Promise<void> {
    if (this.pending) return this.pending;
    const next = this.chain.then(() => {
      this.pending = null;
      return this.writeNow();
    });
    this.pending = next;
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async writeNow(): Promise<void> {
    const file = join(this.dir, STORE_FILE);
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const data = JSON.stringify(this.state, null, 1);
    const handle = await fsp.open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    try {
      await handle.writeFile(data, 'utf8');
      if (this.fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fsp.rename(tmp, file);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    if (this.fsync) {
      try {
        const dirHandle = await fsp.open(this.dir, 'r');
        try { await dirHandle.sync(); } finally { await dirHandle.close(); }
      } catch { /* some platforms cannot fsync a directory */ }
    }
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function readState(file: string): Promise<State> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw err;
  }
  let parsed: Partial<State>;
  try {
    parsed = JSON.parse(text) as Partial<State>;
  } catch (err) {
    throw new Error(`data store ${file} is corrupted: ${(err as Error).message}`);
  }
  if (parsed.format !== 1) throw new Error(`data store ${file} has an unknown format`);
  return {
    format: 1,
    resources: parsed.resources ?? {},
    instances: parsed.instances ?? {},
    blobs: parsed.blobs ?? {},
    counters: parsed.counters ?? {},
  };
}

async function acquireLock(lockFile: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await fsp.open(lockFile, 'wx', 0o600);
      try { await handle.writeFile(String(process.pid)); } finally { await handle.close(); }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number((await fsp.readFile(lockFile, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new Error(`data dir ${lockFile.replace(/\/store\.lock$/, '')} is in use by another control plane (pid ${owner})`);
      }
      // Stale lock (its owner is gone): take it over.
      await fsp.rm(lockFile, { force: true });
    }
  }
  throw new Error(`could not lock ${lockFile}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
