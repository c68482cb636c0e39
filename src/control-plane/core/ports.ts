/**
 * The ports of the control-plane core. Adapters (the embedded JSON store, etcd) implement them;
 * the core never imports an adapter.
 */
import type { Kind, Resource } from '../../api/schema/resources.js';
import type { InstanceInfo } from '../../api/schema/xds.js';

export interface ResourceRef { kind: Kind; name: string }

/** A proxy instance as the registry persists it. */
export interface InstanceRecord {
  info: InstanceInfo;
  /** ISO time of the first registration. */
  registeredAt: string;
  /** ISO time of the last (re)connection. */
  connectedAt?: string;
  /** Set while disconnected (stream closed without goodbye, or control plane restarted). */
  disconnectedAt?: string;
}

/** An instance as the store holds it, and (shared stores) the control plane holding its config stream now. */
export interface StoredInstance {
  record: InstanceRecord;
  /** The session id of the control plane whose config stream the instance is on (undefined: none). */
  liveOn?: string;
}

/**
 * `remote`: the change was made by another control plane sharing the store (always false for the embedded
 * store). `live`: a control plane took (put) or lost (delete) an instance's config stream. `reset`: changes
 * may have been missed (a shared store's watch had to restart): re-read what you keep.
 */
export type StoreChange =
  | { type: 'resource'; kind: Kind; name: string; op: 'put' | 'delete' }
  | { type: 'instance'; id: string; op: 'put' | 'delete'; remote: boolean }
  | { type: 'live'; id: string; op: 'put' | 'delete'; remote: boolean }
  | { type: 'blob'; key: string }
  /** A control plane's value in a section (putSessionValue) was put, or vanished with its session. */
  | { type: 'session-value'; section: string; session: string; op: 'put' | 'delete' }
  /** A control plane sharing the store started or ended (its advertised address came or went). */
  | { type: 'control-planes' }
  | { type: 'reset' };

export interface BlobOptions {
  /** Secret material (keys): stored with owner-only permissions where the adapter can. */
  secret?: boolean;
}

/**
 * Persistent state of the control plane. Every method is async so that a networked store (etcd) fits.
 * Writes resolve once durable. `watch` reports changes, including (for shared stores) other writers' changes.
 */
export interface Store {
  /** True when other control planes may share this store (etcd): the registry then follows their changes. */
  readonly shared: boolean;
  /** This control plane's session in the store (shared stores: unique per process, ends when it dies). */
  readonly sessionId: string;

  // --- resources
  listResources(kind?: Kind): Promise<Resource[]>;
  getResource(kind: Kind, name: string): Promise<Resource | undefined>;
  /** Atomic: every put and delete happens, or none. */
  writeResources(puts: Resource[], deletes?: ResourceRef[]): Promise<void>;
  /** Returns false when there was nothing to delete. */
  deleteResource(kind: Kind, name: string): Promise<boolean>;

  // --- registry instances
  listInstances(): Promise<InstanceRecord[]>;
  /** Every instance with the control plane holding its stream (shared stores; the embedded one has none). */
  listStoredInstances(): Promise<StoredInstance[]>;
  getInstance(id: string): Promise<StoredInstance | undefined>;
  /**
   * A record without `disconnectedAt` says the instance's config stream is open on this control plane: a
   * shared store also marks it live for this session, a mark that ends with the session (etcd: a key on this
   * control plane's lease), so a dead control plane's proxies do not look connected for ever.
   * A record with `disconnectedAt` is written only while no other control plane holds the stream (the proxy
   * may have moved there): returns false when it was not written.
   */
  putInstance(record: InstanceRecord): Promise<boolean>;
  /**
   * Removes the instance unless another control plane holds its stream now (shared stores). Returns false
   * when nothing was deleted (absent, or live elsewhere).
   */
  deleteInstance(id: string): Promise<boolean>;

  // --- small blobs (CA material, signing keys) and counters
  getBlob(key: string): Promise<string | undefined>;
  putBlob(key: string, value: string, opts?: BlobOptions): Promise<void>;
  /** Compare-and-create: stores `value` unless the key exists; returns the value that is stored now. */
  putBlobIfAbsent(key: string, value: string, opts?: BlobOptions): Promise<string>;
  /** Atomically adds `by` (default 1) to a counter (starting at 0) and returns the new value. */
  increment(key: string, by?: number): Promise<number>;
  getCounter(key: string): Promise<number>;

  // --- the control planes sharing the store
  /** Publishes this control plane's xDS address for as long as its session lives (shared stores). */
  advertise(xdsAddress: string): Promise<void>;
  /** The xDS addresses of the live control planes sharing the store (embedded: the advertised one). */
  controlPlaneAddresses(): Promise<string[]>;

  // --- leadership and per-session values (how control planes sharing a store divide work)
  /**
   * Campaigns for the named leadership: `onChange(true)` once this control plane holds it, `onChange(false)` if
   * it loses it (shared stores: it ends with the session, and the others' campaigns then take it over). At
   * most one live session holds a name. The embedded store has one control plane: it leads at once.
   * Returns a function that ends the campaign (and gives the leadership up).
   */
  campaign(name: string, onChange: (leader: boolean) => void): () => void;
  /**
   * Writes a blob only while this session holds the named leadership, checked in the same write (shared
   * stores: a fenced write, so a leader that lost its lease cannot overwrite its successor's). False when not.
   */
  putBlobAsLeader(leadership: string, key: string, value: string): Promise<boolean>;
  /** Sets this session's value in `section` (shared stores: it lives only as long as the session). */
  putSessionValue(section: string, value: string): Promise<void>;
  /** A session's value in `section`, if that session lives and set one. */
  getSessionValue(section: string, session: string): Promise<string | undefined>;

  // --- change watch
  watch(listener: (change: StoreChange) => void): () => void;

  close(): Promise<void>;
}

/** Where the control plane reports what it measures (a Prometheus adapter implements it). */
export interface MetricsSink {
  setConnectedProxies(n: number): void;
  setConfigVersion(version: number): void;
  /** Seconds from a config change to a proxy's ACK of the version carrying it. */
  observePush(seconds: number): void;
  nack(service: string): void;
  certificateIssued(): void;
}

export const NOOP_METRICS: MetricsSink = {
  setConnectedProxies: () => undefined,
  setConfigVersion: () => undefined,
  observePush: () => undefined,
  nack: () => undefined,
  certificateIssued: () => undefined,
};
