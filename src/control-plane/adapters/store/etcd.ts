/**
 * The etcd Store (`--store etcd`): several control planes share one etcd cluster and serve the same mesh.
 * This module is imported only when `--store etcd` is used (control-plane/main.ts imports it lazily), so the
 * etcd client (etcd3, over @grpc/grpc-js) costs nothing to the embedded store's control plane.
 *
 * Keys, under the prefix (default `/trellis/`):
 *   resources/KIND/NAME   the resource's JSON
 *   instances/ID          {"record": InstanceRecord, "writer": SESSION}
 *   live/ID               SESSION of the control plane holding the instance's config stream, on its lease
 *   blobs/KEY             CA material, the token-signing key, the admin token (compare-and-create)
 *   counters/KEY          decimal counter (compare-and-swap loop)
 *   control-planes/SESSION  {"xds": HOST:PORT}, on its lease: the addresses join tokens carry
 *   leaders/NAME          SESSION holding the named leadership (compare-and-create), on its lease
 *   sessions/SECTION/SESSION  a control plane's value in a section (putSessionValue), on its lease
 *
 * Each control plane has a session: a random id and an etcd lease (TTL `leaseTtlSeconds`, kept alive by the
 * client). When a control plane dies its lease expires, its `live/` marks and its `control-planes/` entry
 * vanish, and the other control planes see its instances as disconnected (registry grace period). A lease
 * lost while etcd was unreachable is granted again and the marks this session holds are put back.
 *
 * One watch on the whole prefix (from the revision read at open, so nothing between the first reads and the
 * watch is missed) reports every writer's changes; an instance change is `remote` unless this session wrote it.
 */
import { randomBytes } from 'node:crypto';
import type { Etcd3, IKeyValue, IWatchResponse, Lease, Namespace, Watcher } from 'etcd3';
import type { Kind, Resource } from '../../../api/schema/resources.js';
import { resourceKey } from '../../../api/schema/resources.js';
import type {
  BlobOptions, InstanceRecord, ResourceRef, Store, StoreChange, StoredInstance,
} from '../../core/ports.js';

export interface EtcdStoreOptions {
  /** etcd client URLs, e.g. ["http://127.0.0.1:2379"]. */
  endpoints: string[];
  /** Key prefix (default `/trellis/`): several meshes can share one etcd cluster under different prefixes. */
  prefix?: string;
  /** Session lease TTL in seconds (default 10): how long a dead control plane's proxies still look connected. */
  leaseTtlSeconds?: number;
  /** Deadline of one etcd request (default 5000 ms). */
  requestTimeoutMs?: number;
  /** How long opening waits for etcd before it fails (default 10000 ms). */
  connectTimeoutMs?: number;
  /** Reports background problems (watch restarts, lease re-grants). */
  onWarning?: (message: string, fields?: Record<string, unknown>) => void;
}

export const DEFAULT_ETCD_PREFIX = '/trellis/';
/** etcd's default --max-txn-ops: an apply with more changes than this is refused by etcd. */
const ETCD_DEFAULT_MAX_TXN_OPS = 128;

interface InstanceValue { record: InstanceRecord; writer: string }
interface Campaign { onChange: (leader: boolean) => void; leader: boolean; trying: boolean; again: boolean }

export class EtcdStore implements Store {
  readonly shared = true;
  readonly sessionId: string;
  readonly endpoints: string[];
  readonly prefix: string;
  private readonly client: Etcd3;
  private readonly ns: Namespace;
  private readonly opts: Required<Omit<EtcdStoreOptions, 'prefix' | 'onWarning'>> & Pick<EtcdStoreOptions, 'onWarning'>;
  /** Granted by open() once etcd answered; replaced when lost. */
  private lease!: Lease;
  private watcher?: Watcher;
  private readonly listeners = new Set<(change: StoreChange) => void>();
  /** Instance id -> the record JSON this session holds live (put back if the lease is lost and granted again). */
  private readonly held = new Map<string, string>();
  private advertised?: string;
  /** Section -> this session's value (put back if the lease is lost and granted again). */
  private readonly sessionValues = new Map<string, string>();
  private readonly campaigns = new Map<string, Campaign>();
  private closed = false;

  private constructor(client: Etcd3, opts: EtcdStoreOptions) {
    this.client = client;
    this.endpoints = opts.endpoints;
    this.prefix = opts.prefix ?? DEFAULT_ETCD_PREFIX;
    this.ns = client.namespace(this.prefix);
    this.sessionId = randomBytes(8).toString('hex');
    this.opts = {
      endpoints: opts.endpoints,
      leaseTtlSeconds: opts.leaseTtlSeconds ?? 10,
      requestTimeoutMs: opts.requestTimeoutMs ?? 5000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      onWarning: opts.onWarning,
    };
  }

  /**
   * Connects, checks that etcd answers (a clear error within `connectTimeoutMs` otherwise, never a hang),
   * grants the session lease and starts the watch.
   */
  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    if (opts.endpoints.length === 0) throw new Error('--store etcd needs --etcd-endpoints URL[,URL...]');
    for (const url of opts.endpoints) {
      if (!/^https?:\/\/[^/\s]+\/?$/.test(url)) throw new Error(`invalid etcd endpoint "${url}": expected http://HOST:PORT or https://HOST:PORT`);
    }
    const prefix = opts.prefix ?? DEFAULT_ETCD_PREFIX;
    if (!prefix.startsWith('/') || !prefix.endsWith('/')) throw new Error(`invalid etcd prefix "${prefix}": it must start and end with "/"`);
    const mod = await import('etcd3');
    const requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
    const client = new mod.Etcd3({
      hosts: opts.endpoints,
      dialTimeout: opts.connectTimeoutMs ?? 10_000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
      // The watch reconnects after 250 ms, doubling up to 5 s (the client's default grows to 30 s: a watch
      // would resume up to 30 s after etcd came back).
      faultHandling: { watchBackoff: watchBackoff(0) },
      // grpc-js refuses answers above 4 MiB by default: the registry of a large mesh (10,000 instances) is
      // read in one range at start.
      grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 },
    });
    const store = new EtcdStore(client, opts);
    try {
      const revision = await withTimeout(store.probe().catch((err: Error) => {
        throw new Error(`etcd is unreachable at ${opts.endpoints.join(', ')}: ${err.message}`);
      }), opts.connectTimeoutMs ?? 10_000, `etcd is unreachable at ${opts.endpoints.join(', ')}`);
      store.lease = store.newLease();
      await withTimeout(store.lease.grant(), opts.connectTimeoutMs ?? 10_000, `etcd at ${opts.endpoints.join(', ')} did not grant a lease`);
      await store.startWatch(revision);
    } catch (err) {
      store.closed = true;
      (store.lease as Lease | undefined)?.release();
      client.close();
      const message = (err as Error).message;
      throw new Error(message.includes(opts.endpoints[0]!) ? message : `etcd at ${opts.endpoints.join(', ')}: ${message}`);
    }
    return store;
  }

  /** One read: proves etcd answers; returns the cluster revision the watch starts after. */
  private async probe(): Promise<string> {
    const res = await this.ns.get('blobs/ca').exec();
    return String(res.header.revision);
  }

  // ---------------------------------------------------------------- resources
  async listResources(kind?: Kind): Promise<Resource[]> {
    const values = await this.ns.getAll().prefix(kind ? `resources/${kind}/` : 'resources/').strings();
    return Object.values(values).map((v) => JSON.parse(v) as Resource)
      .sort((a, b) => (a.kind === b.kind ? cmp(a.metadata.name, b.metadata.name) : cmp(a.kind, b.kind)));
  }

  async getResource(kind: Kind, name: string): Promise<Resource | undefined> {
    const v = await this.ns.get(`resources/${kind}/${name}`).string();
    return v === null ? undefined : (JSON.parse(v) as Resource);
  }

  /** One etcd transaction: every put and delete, or none. */
  async writeResources(puts: Resource[], deletes: ResourceRef[] = []): Promise<void> {
    this.assertOpen();
    if (puts.length + deletes.length === 0) return;
    const ops = [
      ...puts.map((r) => this.ns.put(`resources/${resourceKey(r)}`).value(JSON.stringify(r))),
      ...deletes.map((d) => this.ns.delete().key(`resources/${d.kind}/${d.name}`)),
    ];
    try {
      await this.ns.if('resources/', 'Mod', '>', -1).then(...ops).commit();
    } catch (err) {
      if (/too many operations in txn/i.test((err as Error).message)) {
        throw new Error(`etcd refused a transaction of ${ops.length} changes (its --max-txn-ops limit, ${ETCD_DEFAULT_MAX_TXN_OPS} by default): apply fewer resources at once or raise the limit on the etcd servers`);
      }
      throw err;
    }
  }

  async deleteResource(kind: Kind, name: string): Promise<boolean> {
    this.assertOpen();
    const res = await this.ns.delete().key(`resources/${kind}/${name}`).exec();
    return Number(res.deleted) > 0;
  }

  // ---------------------------------------------------------------- instances
  async listInstances(): Promise<InstanceRecord[]> {
    return (await this.listStoredInstances()).map((s) => s.record);
  }

  async listStoredInstances(): Promise<StoredInstance[]> {
    // One transaction: the records and the live marks at the same revision.
    const res = await this.ns.if('instances/', 'Mod', '>', -1)
      .then(this.ns.getAll().prefix('instances/'), this.ns.getAll().prefix('live/'))
      .commit();
    const records = res.responses[0]?.response_range?.kvs ?? [];
    const live = new Map((res.responses[1]?.response_range?.kvs ?? []).map((kv) => [this.unprefix(kv.key).slice('live/'.length), kv.value.toString()]));
    return records.map((kv) => {
      const id = this.unprefix(kv.key).slice('instances/'.length);
      const { record } = JSON.parse(kv.value.toString()) as InstanceValue;
      const liveOn = live.get(id);
      return liveOn ? { record, liveOn } : { record };
    });
  }

  async getInstance(id: string): Promise<StoredInstance | undefined> {
    const res = await this.ns.if(`instances/${id}`, 'Mod', '>', -1)
      .then(this.ns.get(`instances/${id}`), this.ns.get(`live/${id}`))
      .commit();
    const rec = res.responses[0]?.response_range?.kvs?.[0];
    if (!rec) return undefined;
    const { record } = JSON.parse(rec.value.toString()) as InstanceValue;
    const live = res.responses[1]?.response_range?.kvs?.[0];
    return live ? { record, liveOn: live.value.toString() } : { record };
  }

  async putInstance(record: InstanceRecord): Promise<boolean> {
    this.assertOpen();
    const id = record.info.id;
    const value = JSON.stringify({ record, writer: this.sessionId } satisfies InstanceValue);
    if (record.disconnectedAt === undefined) {
      // Connected here: the record and this session's live mark, together.
      this.held.set(id, value);
      await this.ns.if(`instances/${id}`, 'Mod', '>', -1)
        .then(this.ns.put(`instances/${id}`).value(value), this.ns.put(`live/${id}`).value(this.sessionId).lease(this.lease.grant()))
        .commit();
      return true;
    }
    this.held.delete(id);
    return this.unlessLiveElsewhere(id, [
      this.ns.put(`instances/${id}`).value(value),
      this.ns.delete().key(`live/${id}`),
    ]);
  }

  async deleteInstance(id: string): Promise<boolean> {
    this.assertOpen();
    this.held.delete(id);
    const existed = await this.ns.get(`instances/${id}`).exists();
    if (!existed) return false;
    return this.unlessLiveElsewhere(id, [
      this.ns.delete().key(`instances/${id}`),
      this.ns.delete().key(`live/${id}`),
    ]);
  }

  /**
   * Runs `ops` in one transaction if the instance's live mark is absent or this session's, checked with a
   * compare on the mark's revision (a compare-and-swap loop: a mark that changes meanwhile is read again).
   */
  private async unlessLiveElsewhere(id: string, ops: Array<{ op(): Promise<unknown> }>): Promise<boolean> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const mark = (await this.ns.get(`live/${id}`).exec()).kvs[0];
      if (mark && mark.value.toString() !== this.sessionId) return false;
      const res = await this.ns.if(`live/${id}`, 'Mod', '==', mark ? Number(mark.mod_revision) : 0)
        .then(...(ops as never[]))
        .commit();
      if (res.succeeded) return true;
    }
    throw new Error(`instance ${id}: its live mark kept changing; giving up`);
  }

  // ---------------------------------------------------------------- blobs and counters
  async getBlob(key: string): Promise<string | undefined> {
    return (await this.ns.get(`blobs/${key}`).string()) ?? undefined;
  }

  async putBlob(key: string, value: string, _opts?: BlobOptions): Promise<void> {
    this.assertOpen();
    await this.ns.put(`blobs/${key}`).value(value).exec();
  }

  /** Compare-and-create: the first writer wins and everyone gets its value (one CA for every control plane). */
  async putBlobIfAbsent(key: string, value: string, _opts?: BlobOptions): Promise<string> {
    this.assertOpen();
    const res = await this.ns.if(`blobs/${key}`, 'Create', '==', 0)
      .then(this.ns.put(`blobs/${key}`).value(value))
      .else(this.ns.get(`blobs/${key}`))
      .commit();
    if (res.succeeded) return value;
    const kv = res.responses[0]?.response_range?.kvs?.[0];
    if (!kv) throw new Error(`blob ${key} vanished while it was read`);
    return kv.value.toString();
  }

  /** A compare-and-swap loop on the counter's revision: concurrent increments never lose one. */
  async increment(key: string, by = 1): Promise<number> {
    this.assertOpen();
    for (let attempt = 0; attempt < 100; attempt++) {
      const kv = (await this.ns.get(`counters/${key}`).exec()).kvs[0];
      const current = kv ? Number(kv.value.toString()) : 0;
      if (!Number.isSafeInteger(current)) throw new Error(`counter ${key} holds "${kv!.value.toString()}", not a number`);
      const next = current + by;
      const res = await this.ns.if(`counters/${key}`, 'Mod', '==', kv ? Number(kv.mod_revision) : 0)
        .then(this.ns.put(`counters/${key}`).value(String(next)))
        .commit();
      if (res.succeeded) return next;
    }
    throw new Error(`counter ${key}: too much contention; giving up`);
  }

  async getCounter(key: string): Promise<number> {
    const v = await this.ns.get(`counters/${key}`).string();
    return v === null ? 0 : Number(v);
  }

  // ---------------------------------------------------------------- control planes
  async advertise(xdsAddress: string): Promise<void> {
    this.advertised = xdsAddress;
    await this.ns.put(`control-planes/${this.sessionId}`).value(JSON.stringify({ xds: xdsAddress })).lease(this.lease.grant()).exec();
  }

  /** This control plane's address first, then the others' in session order. */
  async controlPlaneAddresses(): Promise<string[]> {
    const all = await this.ns.getAll().prefix('control-planes/').sort('Key', 'Ascend').strings();
    const out: string[] = this.advertised ? [this.advertised] : [];
    for (const v of Object.values(all)) {
      const xds = (JSON.parse(v) as { xds?: unknown }).xds;
      if (typeof xds === 'string' && !out.includes(xds)) out.push(xds);
    }
    return out;
  }

  // ---------------------------------------------------------------- leadership and session values
  /**
   * Compare-and-create of `leaders/NAME` on this session's lease. A loser tries again when the key is
   * deleted (the leader ended its campaign, or its lease expired when it died).
   */
  campaign(name: string, onChange: (leader: boolean) => void): () => void {
    const c: Campaign = { onChange, leader: false, trying: false, again: false };
    this.campaigns.set(name, c);
    void this.tryLead(name);
    return () => {
      if (this.campaigns.get(name) !== c) return;
      this.campaigns.delete(name);
      if (!c.leader || this.closed) return;
      c.leader = false;
      void this.ns.if(`leaders/${name}`, 'Value', '==', this.sessionId)
        .then(this.ns.delete().key(`leaders/${name}`)).commit().catch(() => undefined);
    };
  }

  async putBlobAsLeader(leadership: string, key: string, value: string): Promise<boolean> {
    this.assertOpen();
    const res = await this.ns.if(`leaders/${leadership}`, 'Value', '==', this.sessionId)
      .then(this.ns.put(`blobs/${key}`).value(value))
      .commit();
    return res.succeeded;
  }

  async putSessionValue(section: string, value: string): Promise<void> {
    this.assertOpen();
    this.sessionValues.set(section, value);
    await this.ns.put(`sessions/${section}/${this.sessionId}`).value(value).lease(this.lease.grant()).exec();
  }

  async getSessionValue(section: string, session: string): Promise<string | undefined> {
    return (await this.ns.get(`sessions/${section}/${session}`).string()) ?? undefined;
  }

  private async tryLead(name: string): Promise<void> {
    const c = this.campaigns.get(name);
    if (!c || this.closed || c.leader) return;
    if (c.trying) { c.again = true; return; }
    c.trying = true;
    c.again = false;
    const lease = this.lease;
    try {
      const id = await lease.grant();
      const res = await this.ns.if(`leaders/${name}`, 'Create', '==', 0)
        .then(this.ns.put(`leaders/${name}`).value(this.sessionId).lease(id))
        .else(this.ns.get(`leaders/${name}`))
        .commit();
      const won = res.succeeded || res.responses[0]?.response_range?.kvs?.[0]?.value.toString() === this.sessionId;
      if (won && !this.closed && lease === this.lease && this.campaigns.get(name) === c && !c.leader) {
        c.leader = true;
        c.onChange(true);
      }
    } catch (err) {
      if (!this.closed) {
        this.opts.onWarning?.('leadership campaign failed; retrying in 1 s', { leadership: name, error: (err as Error).message });
        setTimeout(() => void this.tryLead(name), 1000).unref();
      }
    } finally {
      c.trying = false;
      if (c.again) void this.tryLead(name);
    }
  }

  /** The lease is gone: so is every leadership it held. */
  private loseLeaderships(): void {
    for (const c of this.campaigns.values()) {
      if (!c.leader) continue;
      c.leader = false;
      c.onChange(false);
    }
  }

  private onLeaderKey(name: string, op: 'put' | 'delete', holder: string | undefined): void {
    const c = this.campaigns.get(name);
    if (!c) return;
    if (c.leader && (op === 'delete' || holder !== this.sessionId)) {
      c.leader = false;
      c.onChange(false);
    }
    if (op === 'delete') void this.tryLead(name);
  }

  // ---------------------------------------------------------------- watch
  watch(listener: (change: StoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    const watcher = this.watcher;
    this.watcher = undefined;
    await watcher?.cancel().catch(() => undefined);
    // Revoking ends this session at once: the other control planes see its proxies go now, not after the TTL.
    await withTimeout(this.lease.revoke(), 2000, 'lease revoke timed out').catch(() => this.lease.release());
    this.client.close();
  }

  // ---------------------------------------------------------------- internals
  private newLease(): Lease {
    const lease = this.ns.lease(this.opts.leaseTtlSeconds);
    lease.on('lost', (err) => {
      if (this.closed || lease !== this.lease) return;
      this.opts.onWarning?.('etcd session lease lost; granting a new one in 1 s', { error: err.message });
      this.loseLeaderships();
      // Not at once: etcd may still be unreachable (a new lease would be lost again straight away).
      const timer = setTimeout(() => {
        if (this.closed || lease !== this.lease) return;
        this.lease = this.newLease();
        void this.reassert(lease);
      }, 1000);
      timer.unref();
    });
    return lease;
  }

  /**
   * After a new lease: put this session's live marks back (or move them from the lost lease, which etcd may
   * still keep for a while), unless another session took an instance meanwhile; then its address; then
   * revoke the lost lease, which holds nothing any more.
   */
  private async reassert(lost: Lease): Promise<void> {
    const lease = this.lease;
    try {
      await lease.grant();
      for (const [id, value] of this.held) {
        await this.unlessLiveElsewhere(id, [
          this.ns.put(`instances/${id}`).value(value),
          this.ns.put(`live/${id}`).value(this.sessionId).lease(lease.grant()),
        ]);
      }
      if (this.advertised) await this.advertise(this.advertised);
      for (const [section, value] of this.sessionValues) await this.putSessionValue(section, value);
      await lost.revoke().catch(() => undefined);
      for (const name of this.campaigns.keys()) void this.tryLead(name);
    } catch (err) {
      if (this.closed || lease !== this.lease) return;
      this.opts.onWarning?.('could not restore the etcd session; retrying', { error: (err as Error).message });
      const timer = setTimeout(() => { if (!this.closed && lease === this.lease) void this.reassert(lost); }, 1000);
      timer.unref();
    }
  }

  private async startWatch(afterRevision: string): Promise<void> {
    const watcher = await this.ns.watch().prefix('').withPreviousKV().startRevision(String(BigInt(afterRevision) + 1n)).create();
    this.watcher = watcher;
    watcher.on('data', (res: IWatchResponse) => this.onWatch(res));
    watcher.on('disconnected', (err: Error) => {
      if (!this.closed) this.opts.onWarning?.('etcd watch disconnected; reconnecting', { error: err.message });
    });
    watcher.on('error', (err: Error) => {
      // The watch was cancelled (e.g. its revision was compacted): start a new one from now and tell
      // listeners that changes may have been missed.
      if (this.closed || this.watcher !== watcher) return;
      this.opts.onWarning?.('etcd watch cancelled; re-reading the state', { error: err.message });
      this.watcher = undefined;
      void this.restartWatch();
    });
  }

  private async restartWatch(): Promise<void> {
    while (!this.closed) {
      try {
        await this.startWatch(await this.probe());
        this.emit({ type: 'reset' });
        for (const name of this.campaigns.keys()) void this.tryLead(name);
        return;
      } catch (err) {
        this.opts.onWarning?.('could not restart the etcd watch; retrying', { error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  }

  private onWatch(res: IWatchResponse): void {
    for (const ev of res.events) {
      const change = this.toChange(ev.type, ev.kv, ev.prev_kv);
      if (change) this.emit(change);
    }
  }

  private toChange(type: string, kv: IKeyValue, prev: IKeyValue | undefined): StoreChange | undefined {
    const op = type === 'Delete' ? 'delete' : 'put';
    const key = this.unprefix(kv.key);
    const slash = key.indexOf('/');
    const section = key.slice(0, slash);
    const rest = key.slice(slash + 1);
    switch (section) {
      case 'resources': {
        const i = rest.indexOf('/');
        return { type: 'resource', kind: rest.slice(0, i) as Kind, name: rest.slice(i + 1), op };
      }
      case 'instances': {
        let writer: string | undefined;
        if (op === 'put') {
          try { writer = (JSON.parse(kv.value.toString()) as InstanceValue).writer; } catch { /* not ours */ }
        }
        return { type: 'instance', id: rest, op, remote: writer !== this.sessionId };
      }
      case 'live': {
        const owner = (op === 'put' ? kv : prev)?.value.toString();
        return { type: 'live', id: rest, op, remote: owner !== this.sessionId };
      }
      case 'blobs':
        return { type: 'blob', key: rest };
      case 'control-planes':
        return { type: 'control-planes' };
      case 'leaders':
        this.onLeaderKey(rest, op, op === 'put' ? kv.value.toString() : undefined);
        return undefined;
      case 'sessions': {
        const i = rest.lastIndexOf('/');
        return { type: 'session-value', section: rest.slice(0, i), session: rest.slice(i + 1), op };
      }
      default:
        return undefined;
    }
  }

  private unprefix(key: Buffer): string {
    // Keys from a namespace's range reads keep the prefix; the watcher strips it.
    const s = key.toString();
    return s.startsWith(this.prefix) ? s.slice(this.prefix.length) : s;
  }

  private emit(change: StoreChange): void {
    for (const l of this.listeners) {
      try { l(change); } catch { /* a listener's failure is its own */ }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }
}

/** Jittered exponential backoff in the shape the etcd client's watch manager takes (cockatiel's IBackoff). */
function watchBackoff(attempt: number): { duration: number; next(): ReturnType<typeof watchBackoff> } {
  const cap = Math.min(5000, 250 * 2 ** attempt);
  return { duration: Math.round(cap / 2 + Math.random() * (cap / 2)), next: () => watchBackoff(Math.min(attempt + 1, 16)) };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${message} (no answer within ${ms} ms)`)), ms); }),
  ]);
}
