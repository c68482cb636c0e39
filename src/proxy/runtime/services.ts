/**
 * Long-lived services a proxy's filters share across config versions: peer connections, endpoint
 * state, metrics, identity. Filters get them through BuildContext; they are never per request.
 */
import type { PeerPool } from '../upstream/peer-pool.js';
import type { EndpointRegistry } from '../upstream/endpoint-registry.js';
import type { ProxyMetrics } from '../metrics.js';
import type { AppForwarder } from '../upstream/app-forwarder.js';
import type { Logger } from '../../shared/log.js';
import type { TraceExporters } from '../tracing/otlp-exporter.js';
import type { TapHub } from '../tap/tap-hub.js';

export interface ProxyServices {
  readonly service: string;
  readonly trustDomain: string;
  readonly spiffeId: string;
  readonly peers: PeerPool;
  readonly endpoints: EndpointRegistry;
  readonly metrics: ProxyMetrics;
  readonly app: AppForwarder;
  readonly log: Logger;
  /** OTLP span exporters, one per endpoint, shared across config versions (flushed on shutdown). */
  readonly traces: TraceExporters;
  /** Live taps started by the control plane (tap/tap-hub.ts); its `observer` is undefined while none is on. */
  readonly tap?: TapHub;
}
