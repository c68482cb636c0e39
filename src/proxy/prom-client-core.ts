/**
 * The part of prom-client the proxy uses (Registry, Counter, Gauge), without its index: the index also
 * loads Summary (tdigest), Pushgateway (https, zlib), cluster aggregation and the default-metrics
 * collectors (with @opentelemetry/api), none of which a proxy uses: +12.6 MiB of RSS for the index
 * against +2.8 MiB for these three (bench/proxy-rss.ts, docs/dependencies.md).
 * prom-client 15 has no "exports" map, so its lib/ files are public paths; the types are the index's,
 * and the classes are the very ones the index exports (the same files), so the exposition is unchanged.
 */
import { createRequire } from 'node:module';
import type client from 'prom-client';

const require = createRequire(import.meta.url);

export const Registry = require('prom-client/lib/registry') as typeof client.Registry;
export const Counter = require('prom-client/lib/counter') as typeof client.Counter;
export const Gauge = require('prom-client/lib/gauge') as typeof client.Gauge;
export type Registry = client.Registry;
export type Counter<T extends string = string> = client.Counter<T>;
export type Gauge<T extends string = string> = client.Gauge<T>;
