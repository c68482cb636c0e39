/**
 * The ports of the control-plane core. Adapters (embedded JSON store today, etcd later) implement them;
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

export type StoreChange =
  | { type: 'resource'; kind: Kind; name: string; op: 'put' | 'delete' }
  | { type: 'instance'; id: string; op: 'put' | 'delete' }
  | { type: 'blob'; key: string };

export interface BlobOptions {
  /** Secret material (keys): stored with owner-only permissions where the adapter can. */
  secret?: boolean;
}

/**
 * Persistent state of the control plane. Every method is async so that a networked store (etcd) fits.
 * Writes resolve once durable. `watch` reports changes, including (for shared stores) other writers' changes.
 */
export interface Store {
  // --- resources
  listResources(kind?: Kind): Promise<Resource[]>;
  getResource(kind: Kind, name: string): Promise<Resource | undefined>;
  /** Atomic: every put and delete happens, or none. */
  writeResources(puts: Resource[], deletes?: ResourceRef[]): Promise<void>;
  /** Returns false when there was nothing to delete. */
  deleteResource(kind: Kind, name: string): Promise<boolean>;

  // --- registry instances
  listInstances(): Promise<InstanceRecord[]>;
  putInstance(record: InstanceRecord): Promise<void>;
  deleteInstance(id: string): Promise<boolean>;

  // --- small blobs (CA material, signing keys) and counters
  getBlob(key: string): Promise<string | undefined>;
  putBlob(key: string, value: string, opts?: BlobOptions): Promise<void>;
  /** Compare-and-create: stores `value` unless the key exists; returns the value that is stored now. */
  putBlobIfAbsent(key: string, value: string, opts?: BlobOptions): Promise<string>;
  /** Atomically increments a counter (starting at 0) and returns the new value. */
  increment(key: string): Promise<number>;
  getCounter(key: string): Promise<number>;

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
