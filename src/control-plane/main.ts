/**
 * Wires the control plane: store -> identity (CA) -> tokens -> registry -> compiler -> xDS server + REST API.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseHostPort } from '../shared/address.js';
import { createLogger, type Logger } from '../shared/log.js';
import { EmbeddedStore } from './adapters/store/embedded.js';
import { XdsServer, type XdsServerOptions } from './adapters/xds/server.js';
import { ApiServer } from './adapters/api/server.js';
import { PrometheusMetrics } from './adapters/metrics/prometheus.js';
import { SnapshotCompiler } from './core/compiler.js';
import { IdentityService } from './core/identity.js';
import { ProxyTracker } from './core/proxies.js';
import { GoldenMetrics } from './core/golden-metrics.js';
import { TapService, TAP_REFRESH_MS } from './core/taps.js';
import { DenialLog } from './core/denials.js';
import { MeshQueries } from './core/queries.js';
import { OverviewService } from './core/overview.js';
import { repoRoot } from '../shared/repo-root.js';
import { Registry, DEFAULT_INSTANCE_GRACE_MS } from './core/registry.js';
import { ResourceService } from './core/resource-service.js';
import { TokenService } from './core/tokens.js';
import { ROLLOUT_LEADERSHIP, RolloutController, registryInstances } from './core/rollouts.js';
import { onRolloutStoreChange } from './core/rollout-replication.js';
import { RolloutCommands } from './core/rollout-commands.js';
import { SharedSubsetStats } from './core/shared-subset-stats.js';
import { statsIntervalFromEnv } from '../proxy/stats.js';
import { SubsetMetrics } from './core/subset-metrics.js';
import type { Store } from './core/ports.js';

export interface ControlPlaneOptions {
  dataDir: string;
  /** REST API address HOST:PORT (port 0 picks a free port). */
  api: string;
  /** xDS (proxy-facing TLS) address HOST:PORT. */
  xds: string;
  trustDomain: string;
  store: 'embedded' | 'etcd';
  /** With store "etcd": the etcd client URLs. */
  etcdEndpoints?: string[];
  /** With store "etcd": the key prefix (default /trellis/). */
  etcdPrefix?: string;
  /** With store "etcd": session lease TTL in seconds (default 10). */
  etcdLeaseTtlSeconds?: number;
  caCertFile?: string;
  caKeyFile?: string;
  instanceGraceMs?: number;
  xdsOptions?: XdsServerOptions;
  /** The built web dashboard served at / (default: dist/dashboard in the package). */
  dashboardDir?: string;
  log?: Logger;
}

export interface RunningControlPlane {
  apiAddress: string;
  xdsAddress: string;
  /** The data dir's admin token (required by the API on a non-loopback address). */
  adminToken: string;
  close(): Promise<void>;
}

export const ADMIN_TOKEN_FILE = 'admin-token';
/** Registry changes are written to the store in batches at most this often (pushes go out first). */
export const REGISTRY_PERSIST_DELAY_MS = 200;

/** Reads the data dir's admin token, creating it (mode 0600) on first start. */
export async function ensureAdminToken(dataDir: string): Promise<string> {
  const file = join(dataDir, ADMIN_TOKEN_FILE);
  try {
    const existing = (await fsp.readFile(file, 'utf8')).trim();
    if (existing) return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  try {
    await fsp.writeFile(file, token + '\n', { mode: 0o600, flag: 'wx' });
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await fsp.readFile(file, 'utf8')).trim();
    throw err;
  }
}

/** The admin token blob of a shared store: one token for every control plane sharing it. */
export const ADMIN_TOKEN_BLOB = 'admin-token';

/**
 * The shared store's admin token (created by the first control plane, compare-and-create), also written to
 * the data dir's admin-token file (mode 0600) where operators look for it.
 */
export async function ensureSharedAdminToken(store: Store, dataDir: string): Promise<string> {
  const token = (await store.getBlob(ADMIN_TOKEN_BLOB))
    ?? await store.putBlobIfAbsent(ADMIN_TOKEN_BLOB, randomBytes(32).toString('base64url'), { secret: true });
  await fsp.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, ADMIN_TOKEN_FILE);
  const existing = await fsp.readFile(file, 'utf8').catch(() => undefined);
  if (existing?.trim() !== token) {
    const tmp = `${file}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, token + '\n', { mode: 0o600 });
    await fsp.rename(tmp, file);
  }
  return token;
}

async function openStore(opts: ControlPlaneOptions, log: Logger): Promise<Store> {
  if (opts.store === 'embedded') return EmbeddedStore.open(opts.dataDir);
  if (opts.store === 'etcd') {
    // Loaded only here: the embedded store's control plane never loads the etcd client.
    const { EtcdStore } = await import('./adapters/store/etcd.js');
    const store = await EtcdStore.open({
      endpoints: opts.etcdEndpoints ?? [],
      ...(opts.etcdPrefix !== undefined ? { prefix: opts.etcdPrefix } : {}),
      ...(opts.etcdLeaseTtlSeconds !== undefined ? { leaseTtlSeconds: opts.etcdLeaseTtlSeconds } : {}),
      onWarning: (message, fields) => log.warn(message, fields),
    });
    log.info('etcd store opened', { endpoints: store.endpoints, prefix: store.prefix, session: store.sessionId });
    return store;
  }
  throw new Error(`unknown store "${String(opts.store)}": use embedded or etcd`);
}

export async function startControlPlane(opts: ControlPlaneOptions): Promise<RunningControlPlane> {
  const log = opts.log ?? createLogger({ component: 'control-plane' });
  const apiAddr = parseHostPort(opts.api, '--api address');
  const xdsAddr = parseHostPort(opts.xds, '--xds address');
  const startedAt = new Date().toISOString();

  const store: Store = await openStore(opts, log);
  const cleanups: (() => Promise<void>)[] = [() => store.close()];
  const closeAll = async () => {
    for (const c of cleanups.reverse()) await c().catch((err) => log.warn('shutdown step failed', { error: (err as Error).message }));
  };
  try {
    const adminToken = store.shared ? await ensureSharedAdminToken(store, opts.dataDir) : await ensureAdminToken(opts.dataDir);
    const identity = await IdentityService.init(store, {
      trustDomain: opts.trustDomain,
      ...(opts.caCertFile ? { caCertFile: opts.caCertFile } : {}),
      ...(opts.caKeyFile ? { caKeyFile: opts.caKeyFile } : {}),
    });
    const metrics = new PrometheusMetrics();
    const registry = new Registry(store, {
      graceMs: opts.instanceGraceMs ?? DEFAULT_INSTANCE_GRACE_MS,
      persistDelayMs: REGISTRY_PERSIST_DELAY_MS,
      onError: (err) => log.error('registry persistence failed', { error: (err as Error).message }),
    });
    await registry.load();
    cleanups.push(() => registry.close());
    // Rollouts: status restored before the first version, so a restart keeps each split (core/rollouts.ts).
    let pushConfig = () => {};
    const subsetStats = new SubsetMetrics({ onDropped: () => metrics.rolloutStatsDropped() });
    // With a shared store one control plane leads the rollouts (Store.campaign); the others follow its status,
    // publish their proxies' canary stats for it and forward promote/abort to it.
    let commands: RolloutCommands | undefined;
    const rollouts = new RolloutController({
      store, metrics: subsetStats, instances: (service) => registryInstances(registry, service),
      onRoutingChange: () => pushConfig(), log: log.child({ component: 'rollouts' }),
      elected: store.shared,
      forward: (action, service) => commands!.forward(action, service),
    });
    commands = new RolloutCommands({ store, controller: rollouts, log });
    const rolloutCommands = commands;
    const sharedStats = new SharedSubsetStats({ store, metrics: subsetStats, log, onDropped: (n) => metrics.rolloutStatsDropped(n) });
    await rollouts.start();
    metrics.observeRollouts(rollouts);
    cleanups.push(async () => { rollouts.close(); rolloutCommands.close(); });
    if (store.shared) {
      const publish = setInterval(() => {
        sharedStats.publish().catch((err) => log.warn('could not publish canary stats', { error: (err as Error).message }));
      }, statsIntervalFromEnv());
      publish.unref();
      cleanups.push(async () => clearInterval(publish));
    }
    const compiler = new SnapshotCompiler(store, registry, opts.trustDomain, rollouts);
    metrics.setConfigVersion(Number(await compiler.init()));
    const proxies = new ProxyTracker();

    let xds: XdsServer | undefined;
    const tokens = await TokenService.init(store, {
      trustDomain: opts.trustDomain,
      pin: identity.pin,
      controlPlaneAddress: () => {
        if (!xds) throw new Error('the xDS endpoint is not listening yet');
        return xds.advertisedAddress;
      },
      ...(store.shared ? { controlPlaneAddresses: () => store.controlPlaneAddresses() } : {}),
    });
    const stats = new GoldenMetrics();
    const taps = new TapService({ metrics });
    const denials = new DenialLog();
    const tapRefresh = setInterval(() => taps.refresh(), TAP_REFRESH_MS);
    tapRefresh.unref();
    cleanups.push(async () => clearInterval(tapRefresh));
    xds = new XdsServer({ identity, tokens, registry, compiler, proxies, metrics, stats, subsetStats, taps, denials, log: log.child({ component: 'xds' }),
      ...(store.shared ? { controlPlanes: () => store.controlPlaneAddresses() } : {}),
      ...(opts.xdsOptions ? { options: opts.xdsOptions } : {}) });
    const xdsServer = xds;
    const xdsAddress = await xdsServer.listen(xdsAddr.host, xdsAddr.port);
    cleanups.push(() => xdsServer.close());
    await store.advertise(xdsServer.advertisedAddress);

    // Any change to resources or the registry -> a new version pushed to every proxy.
    // With a shared store this includes the other control planes' changes: a resource applied on one reaches
    // the proxies of every one.
    const unwatch = store.watch((change) => {
      if (change.type === 'resource' || change.type === 'reset') xdsServer.schedulePush();
      onRolloutStoreChange(change, { rollouts, commands: rolloutCommands, stats: sharedStats });
      if (change.type === 'control-planes' || change.type === 'reset') {
        xdsServer.broadcastControlPlanes().catch((err) => log.warn('could not send the control planes to proxies', { error: (err as Error).message }));
      }
    });
    cleanups.push(async () => unwatch());
    // After the watch: a leader elected from now on sees every change. Embedded store: leads at once.
    const stopCampaign = store.campaign(ROLLOUT_LEADERSHIP, (leader) => rollouts.setLeader(leader));
    // Stopped first (cleanups run in reverse): no analysis or status write once another may lead.
    cleanups.push(async () => { rollouts.close(); stopCampaign(); });
    registry.on('change', () => { xdsServer.schedulePush(); rollouts.instancesChanged(); });
    pushConfig = () => xdsServer.schedulePush();

    const resources = new ResourceService(store, registry);
    const queries = new MeshQueries(store, registry, proxies, opts.trustDomain, () => compiler.currentVersion);
    const overview = new OverviewService({ store, queries, stats, denials });
    let ready = false;
    const api = new ApiServer({
      resources, tokens, queries, metrics, adminToken, stats, taps, denials, overview, rollouts, log: log.child({ component: 'api' }),
      events: { onDropped: () => metrics.eventDropped() },
      dashboardDir: opts.dashboardDir ?? join(repoRoot(), 'dist', 'dashboard'),
      ready: () => ready,
      status: () => ({
        version: compiler.currentVersion,
        trustDomain: opts.trustDomain,
        xdsAddress: xdsServer.advertisedAddress,
        ca: { pin: identity.pin, notAfter: identity.ca.notAfter.toISOString(), pem: identity.caPem },
        connectedProxies: proxies.connectedCount(),
        certificatesIssued: identity.certificatesIssued,
        startedAt,
      }),
    });
    const apiAddress = await api.listen(apiAddr.host, apiAddr.port);
    cleanups.push(() => api.close());
    ready = true;
    log.info('control plane started', {
      api: apiAddress, xds: xdsAddress, trustDomain: opts.trustDomain, dataDir: opts.dataDir, caPin: identity.pin, caSource: identity.source,
      store: opts.store,
    });

    let closing: Promise<void> | undefined;
    return {
      apiAddress,
      xdsAddress,
      adminToken,
      close: () => {
        closing ??= (async () => {
          ready = false;
          await closeAll();
        })();
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
