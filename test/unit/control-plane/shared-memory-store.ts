/**
 * An in-memory stand-in for a store several control planes share (what EtcdStore is), for unit tests of the
 * leader/follower logic: `SharedMemory.session()` gives each control plane its Store; `kill(session)` ends a
 * session the way an expired etcd lease does (its leaderships and session values vanish, the others' watches
 * see it). Only what the rollout code uses is implemented; the rest throws.
 */
import type { Kind, Resource } from '../../../src/api/schema/resources.js';
import type { Store, StoreChange } from '../../../src/control-plane/core/ports.js';

interface Campaign { session: string; onChange: (leader: boolean) => void }

export class SharedMemory {
  readonly resources = new Map<string, Resource>();
  readonly blobs = new Map<string, string>();
  /** section -> session -> value */
  readonly sessionValues = new Map<string, Map<string, string>>();
  /** leadership name -> holder session */
  readonly leaders = new Map<string, string>();
  private readonly campaigns = new Map<string, Campaign[]>();
  private readonly listeners = new Map<string, Set<(c: StoreChange) => void>>();
  private readonly dead = new Set<string>();
  private sessions = 0;
  /** Writes per blob key (a test can see who wrote). */
  readonly blobWrites: { key: string; session: string }[] = [];

  session(): Store & { kill(): void } {
    const id = `session-${++this.sessions}`;
    this.listeners.set(id, new Set());
    const mem = this;
    const alive = () => { if (mem.dead.has(id)) throw new Error(`session ${id} is dead`); };
    const unsupported = () => { throw new Error('not used by these tests'); };
    return {
      shared: true,
      sessionId: id,
      kill: () => this.kill(id),
      listResources: async (kind?: Kind) => [...this.resources.values()].filter((r) => !kind || r.kind === kind),
      getResource: async (kind: Kind, name: string) => this.resources.get(`${kind}/${name}`),
      writeResources: async (puts: Resource[]) => {
        alive();
        for (const r of puts) { this.resources.set(`${r.kind}/${r.metadata.name}`, r); this.emit({ type: 'resource', kind: r.kind, name: r.metadata.name, op: 'put' }); }
      },
      deleteResource: async (kind: Kind, name: string) => {
        const had = this.resources.delete(`${kind}/${name}`);
        if (had) this.emit({ type: 'resource', kind, name, op: 'delete' });
        return had;
      },
      listInstances: unsupported, listStoredInstances: unsupported, getInstance: unsupported, putInstance: unsupported, deleteInstance: unsupported,
      getBlob: async (key: string) => this.blobs.get(key),
      putBlob: async (key: string, value: string) => {
        alive();
        this.blobs.set(key, value);
        this.blobWrites.push({ key, session: id });
        this.emit({ type: 'blob', key });
      },
      putBlobAsLeader: async (leadership: string, key: string, value: string) => {
        alive();
        if (this.leaders.get(leadership) !== id) return false;
        this.blobs.set(key, value);
        this.blobWrites.push({ key, session: id });
        this.emit({ type: 'blob', key });
        return true;
      },
      putBlobIfAbsent: unsupported, increment: unsupported, getCounter: unsupported,
      advertise: async () => undefined,
      controlPlaneAddresses: async () => [],
      campaign: (name: string, onChange: (leader: boolean) => void) => {
        const c: Campaign = { session: id, onChange };
        this.campaigns.set(name, [...(this.campaigns.get(name) ?? []), c]);
        queueMicrotask(() => this.elect(name));
        return () => {
          this.campaigns.set(name, (this.campaigns.get(name) ?? []).filter((x) => x !== c));
          if (this.leaders.get(name) === id) { this.leaders.delete(name); this.elect(name); }
        };
      },
      putSessionValue: async (section: string, value: string) => {
        alive();
        let m = this.sessionValues.get(section);
        if (!m) this.sessionValues.set(section, (m = new Map()));
        m.set(id, value);
        this.emit({ type: 'session-value', section, session: id, op: 'put' });
      },
      getSessionValue: async (section: string, session: string) => this.sessionValues.get(section)?.get(session),
      watch: (listener: (c: StoreChange) => void) => {
        this.listeners.get(id)!.add(listener);
        return () => { this.listeners.get(id)?.delete(listener); };
      },
      close: async () => this.kill(id),
    };
  }

  /** The session ends (a lease expiring): its campaigns, leaderships and values go; another candidate leads. */
  kill(id: string): void {
    if (this.dead.has(id)) return;
    this.dead.add(id);
    this.listeners.delete(id);
    for (const [section, m] of this.sessionValues) {
      if (m.delete(id)) this.emit({ type: 'session-value', section, session: id, op: 'delete' });
    }
    for (const [name, list] of this.campaigns) {
      this.campaigns.set(name, list.filter((c) => c.session !== id));
      if (this.leaders.get(name) === id) { this.leaders.delete(name); this.elect(name); }
    }
  }

  private elect(name: string): void {
    if (this.leaders.has(name)) return;
    const next = (this.campaigns.get(name) ?? []).find((c) => !this.dead.has(c.session));
    if (!next) return;
    this.leaders.set(name, next.session);
    next.onChange(true);
  }

  private emit(change: StoreChange): void {
    for (const set of [...this.listeners.values()]) for (const l of set) l(change);
  }
}
