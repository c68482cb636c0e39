/**
 * What the control plane streams to every proxy: a whole, immutable, versioned snapshot.
 * The proxy validates it with this schema before building anything, and NACKs what fails.
 */
import { z } from 'zod';
import { LabelMap, Name, Protocol } from './common.js';
import {
  AuthorizationPolicyResource, HTTPRouteResource, JWTAuthenticationResource, MeshConfigSpec,
  TCPRouteResource, TrafficPolicySpec,
} from './resources.js';

export const Endpoint = z.object({
  /** Stable id of the proxy instance that registered it. */
  id: z.string().min(1),
  /** host:port of the instance's inbound (mTLS) listener. */
  address: z.string().regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/, 'must be HOST:PORT'),
  labels: LabelMap.default({}),
  /** Set while the instance's proxy is disconnected from the control plane (kept for a grace period). */
  draining: z.boolean().default(false),
}).strict();

export const ClusterConfig = z.object({
  name: Name,
  protocol: Protocol,
  port: z.number().int().optional(),
  endpoints: z.array(Endpoint),
  trafficPolicy: TrafficPolicySpec.optional(),
  /** Name of the TrafficPolicy resource the policy came from, for metrics and explain. */
  trafficPolicyName: z.string().optional(),
}).strict();

export const Snapshot = z.object({
  version: z.string().min(1),
  trustDomain: z.string().min(1),
  meshConfig: MeshConfigSpec,
  /** Every service of the mesh a proxy may call, keyed by name. */
  clusters: z.record(Name, ClusterConfig),
  httpRoutes: z.array(HTTPRouteResource).default([]),
  tcpRoutes: z.array(TCPRouteResource).default([]),
  authorizationPolicies: z.array(AuthorizationPolicyResource).default([]),
  jwtAuthentications: z.array(JWTAuthenticationResource).default([]),
}).strict();

/**
 * An incremental update (like Envoy's delta xDS), sent only to proxies that announced the `delta` feature
 * in hello: the clusters and HTTPRoutes that changed or appeared since `baseVersion`, the names of those
 * removed, and any other section that changed, whole. The proxy applies it only on top of exactly `baseVersion` (else it
 * NACKs with DELTA_BASE_MISMATCH and the control plane sends the whole snapshot); the result is a whole,
 * immutable snapshot at `version`, as if it had been sent in full.
 */
export const SnapshotDelta = z.object({
  version: z.string().min(1),
  baseVersion: z.string().min(1),
  trustDomain: z.string().min(1),
  clusters: z.record(Name, ClusterConfig),
  removedClusters: z.array(Name),
  meshConfig: MeshConfigSpec.optional(),
  /** HTTPRoutes added or changed since the base (by name); the others stay. */
  httpRoutes: z.array(HTTPRouteResource).optional(),
  removedHttpRoutes: z.array(z.string().min(1)).optional(),
  tcpRoutes: z.array(TCPRouteResource).optional(),
  authorizationPolicies: z.array(AuthorizationPolicyResource).optional(),
  jwtAuthentications: z.array(JWTAuthenticationResource).optional(),
}).strict();

/** The NACK reason prefix of a delta whose base is not the proxy's current version. */
export const DELTA_BASE_MISMATCH = 'DELTA_BASE_MISMATCH';

export type Endpoint = z.infer<typeof Endpoint>;
export type SnapshotDelta = z.infer<typeof SnapshotDelta>;
export type ClusterConfig = z.infer<typeof ClusterConfig>;
export type Snapshot = z.infer<typeof Snapshot>;
