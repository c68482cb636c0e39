/**
 * Filter factories: each feature registers one factory by name in ../filters/registry.ts.
 * A factory runs once per config version and returns null when its policy is absent, so an
 * absent policy costs nothing per request.
 */
import type { Snapshot } from '../../api/schema/snapshot.js';
import type { HTTPRouteRule } from '../../api/schema/resources.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import type { ProxyServices } from '../runtime/services.js';
import type { HttpFilter } from './types.js';

/** What every factory may read while it builds. */
export interface BuildContext {
  readonly snapshot: Snapshot;
  readonly services: ProxyServices;
  /** This proxy's own service. */
  readonly self: string;
  /** Every destination cluster of this version (filled before any rule filter is built). */
  readonly clusters: ReadonlyMap<string, ClusterRuntime>;
}

/** Filters that apply to all traffic to one destination service (outbound) or to this instance (inbound). */
export interface ServiceFilterFactory {
  readonly name: string;
  build(ctx: BuildContext, service: string, cluster: ClusterRuntime | undefined): HttpFilter | null;
}

/** Filters that apply to one matched route rule (Gateway API route filters, timeouts, retries…). */
export interface RuleFilterFactory {
  readonly name: string;
  build(ctx: BuildContext, rule: HTTPRouteRule, routeName: string, service: string): HttpFilter | null;
}
