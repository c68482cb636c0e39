/**
 * The big mesh of the control-plane benchmark: S services (Service resources), E endpoints, a few
 * canary HTTPRoutes and TrafficPolicies, and the control plane process that serves it.
 *
 * Endpoints: the benchmark's connected proxies register their own instance with `hello` (the real
 * path). The rest (E − connections) are written to the control plane's store before it starts and
 * restored by Registry.load() — the same path as a control-plane restart with that many instances
 * registered — and kept by a long --instance-grace. They have no process behind them: nothing
 * listens at their addresses, which only matters to traffic, and the benchmark only sends traffic
 * to a service whose endpoints are real.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/control-plane/adapters/store/embedded.js';
import type { InstanceRecord } from '../../src/control-plane/core/ports.js';
import type { Resource } from '../../src/api/schema/resources.js';
import { readAnnouncements } from '../../src/shared/log.js';
import { REPO_ROOT } from './targets.js';
import { sleep, spawnManaged, type Managed } from './util.js';

export const svcName = (i: number): string => `svc-${String(i).padStart(4, '0')}`;

export interface MeshShape {
  services: number;
  endpoints: number;
  /** Services 0..connections-1 get one connected proxy each; their instances count in `endpoints`. */
  connections: number;
  /** HTTPRoutes: canary splits (v1/v2 subsets) for services [routeBase, routeBase + routes). */
  routes: number;
  /** TrafficPolicies for services [0, policies). */
  policies: number;
}

/** Canary routes start at this service index (so they target other services than the policies' first ones). */
export const ROUTE_BASE = 2;

/** Instances of the store-seeded endpoints: spread over every service except svc-0000 (the load target). */
export function seededInstances(shape: MeshShape, now = new Date().toISOString()): InstanceRecord[] {
  const out: InstanceRecord[] = [];
  const n = shape.endpoints - shape.connections;
  for (let i = 0; i < n; i++) {
    const svc = 1 + (i % (shape.services - 1));
    out.push({
      info: {
        id: `${svcName(svc)}-seeded-${i}`,
        service: svcName(svc),
        // 10.x addresses: never contacted by the benchmark (no traffic goes to these services).
        address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:15006`,
        protocol: 'http',
        labels: { version: i % 5 === 0 ? 'v2' : 'v1', zone: `z${i % 3}` },
      },
      registeredAt: now,
      connectedAt: now,
    });
  }
  return out;
}

export function meshResources(shape: MeshShape): Resource[] {
  const out: Resource[] = [];
  for (let i = 0; i < shape.services; i++) {
    out.push({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: svcName(i) }, spec: { protocol: 'http', port: 8080 } } as Resource);
  }
  for (let i = 0; i < shape.policies; i++) out.push(trafficPolicy(svcName(i), 0));
  for (let i = ROUTE_BASE; i < ROUTE_BASE + shape.routes && i < shape.services; i++) out.push(canaryRoute(svcName(i), 90));
  return out;
}

/** A TrafficPolicy whose request timeout carries `marker` (so a proxy can tell which change it has). */
export function trafficPolicy(service: string, marker: number): Resource {
  return {
    apiVersion: 'trellis.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: `${service}-policy` },
    spec: {
      targetRef: { name: service },
      loadBalancer: { type: marker % 2 === 0 ? 'LeastRequest' : 'RoundRobin' },
      timeouts: { request: `${10_000 + marker}ms` },
      outlierDetection: { consecutive5xx: 5, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 50 },
    },
  } as Resource;
}

/** A canary route: v1 gets `v1Weight`, v2 gets 10. */
export function canaryRoute(service: string, v1Weight: number): Resource {
  return {
    apiVersion: 'trellis.dev/v1alpha1', kind: 'HTTPRoute', metadata: { name: `${service}-canary` },
    spec: {
      parentRefs: [{ name: service }],
      rules: [
        { name: 'beta', matches: [{ headers: [{ name: 'x-beta', value: '1' }] }], backendRefs: [{ name: service, subset: { version: 'v2' } }] },
        { name: 'split', backendRefs: [{ name: service, subset: { version: 'v1' }, weight: v1Weight }, { name: service, subset: { version: 'v2' }, weight: 10 }] },
      ],
    },
  } as Resource;
}

/** A fresh data dir whose store already holds the seeded instances (the control plane restores them). */
export async function seedDataDir(shape: MeshShape): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-cpbench-'));
  const store = await EmbeddedStore.open(dir, { fsync: false });
  try {
    // Concurrent puts share one write of the whole state.
    await Promise.all(seededInstances(shape).map((r) => store.putInstance(r)));
  } finally {
    await store.close();
  }
  return dir;
}

export interface ControlPlaneProc { m: Managed; api: string; xds: string; startupMs: number }

/** `trellis control-plane` on port 0 over `dataDir`; nodeArgs e.g. ['--cpu-prof', '--cpu-prof-dir=D']. */
export async function startControlPlaneProc(dataDir: string, nodeArgs: string[] = []): Promise<ControlPlaneProc> {
  const t0 = performance.now();
  const m = spawnManaged('trellis-control-plane', process.execPath, [...nodeArgs, join(REPO_ROOT, 'bin', 'trellis.js'), 'control-plane',
    '--data-dir', dataDir, '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--instance-grace', '6h'], {
    cwd: REPO_ROOT, env: { ...process.env, TRELLIS_LOG_LEVEL: 'warn' },
  });
  const listening: Record<string, string> = {};
  readAnnouncements(m.proc.stdout!, {
    onEvent: (ev) => { if (ev.event === 'listening' && typeof ev.name === 'string' && typeof ev.address === 'string') listening[ev.name] = ev.address; },
  });
  const deadline = Date.now() + 60_000;
  while (!(listening.api && listening.xds)) {
    if (m.proc.exitCode !== null) throw new Error(`control plane exited early:\n${m.output()}`);
    if (Date.now() > deadline) { await m.stop(); throw new Error(`control plane not listening within 60s:\n${m.output()}`); }
    await sleep(20);
  }
  return { m, api: listening.api, xds: listening.xds, startupMs: performance.now() - t0 };
}
