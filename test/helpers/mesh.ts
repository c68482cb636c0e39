/**
 * Starts real proxies joined to a real control plane, for integration tests.
 */
import { pollUntil } from '../../src/shared/poll.js';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrellisClient } from '../../src/sdk/client.js';
import { startProcess } from './processes.js';

export interface ControlPlaneRef { api: string; xds: string }

export interface MeshProxy {
  service: string;
  admin: string;
  inbound: string;
  outbound: Record<string, string>;
  httpProxy?: string;
  proc: Awaited<ReturnType<typeof startProcess>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function client(cp: ControlPlaneRef): TrellisClient {
  return new TrellisClient({ baseUrl: `http://${cp.api}` });
}

export async function tokenFile(cp: ControlPlaneRef, service: string, ttl?: string): Promise<string> {
  const { token } = await client(cp).createToken(service, ttl);
  const dir = await mkdtemp(join(tmpdir(), 'trellis-token-'));
  const file = join(dir, 'token');
  await writeFile(file, token, { mode: 0o600 });
  return file;
}

export async function startMeshProxy(cp: ControlPlaneRef, opts: {
  service: string; app: string; protocol?: string; labels?: Record<string, string>;
  outbound?: string[]; httpProxy?: boolean; extraArgs?: string[]; tokenPath?: string;
}): Promise<MeshProxy> {
  const file = opts.tokenPath ?? await tokenFile(cp, opts.service);
  const args = ['proxy', '--service', opts.service, '--app', opts.app, '--inbound', '127.0.0.1:0', '--token-file', file,
    '--protocol', opts.protocol ?? 'http', '--drain-timeout', '5s'];
  if (opts.labels) args.push('--labels', Object.entries(opts.labels).map(([k, v]) => `${k}=${v}`).join(','));
  for (const name of opts.outbound ?? []) args.push('--outbound', `${name}=127.0.0.1:0`);
  if (opts.httpProxy) args.push('--http-proxy', '127.0.0.1:0');
  args.push(...(opts.extraArgs ?? []));
  const expect = ['admin', 'inbound', ...(opts.outbound ?? []).map((n) => `outbound:${n}`), ...(opts.httpProxy ? ['http-proxy'] : [])];
  const proc = await startProcess(args, { expect });
  await proc.waitForLine((line) => line.includes('"event":"ready"'), 15_000);
  const outbound: Record<string, string> = {};
  for (const name of opts.outbound ?? []) outbound[name] = proc.listening[`outbound:${name}`]!;
  return {
    service: opts.service,
    admin: proc.listening.admin!,
    inbound: proc.listening.inbound!,
    outbound,
    httpProxy: proc.listening['http-proxy'],
    proc,
    stop: (signal = 'SIGTERM') => proc.stop(signal),
  };
}

/** Polls `check` until it returns a truthy value (conditions with no event to await), or fails after timeoutMs. */
export function eventually<T>(check: () => Promise<T> | T, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  return pollUntil<T>(check, { timeoutMs, what });
}

/** Waits until a proxy's config contains `service` with `count` endpoints. */
export async function waitForEndpoints(proxy: MeshProxy, service: string, count: number, timeoutMs = 10_000): Promise<void> {
  await eventually(async () => {
    const res = await fetch(`http://${proxy.admin}/config`);
    const cfg = await res.json() as { snapshot?: { clusters?: Record<string, { endpoints: unknown[] }> } };
    return cfg.snapshot?.clusters?.[service]?.endpoints.length === count;
  }, timeoutMs, `${proxy.service} to see ${count} endpoints of ${service}`);
}

/** Waits until a proxy's current snapshot satisfies `predicate` (a version change alone may be another push). */
export async function waitForConfig(proxy: MeshProxy, predicate: (snapshot: any) => boolean, what = 'the expected config', timeoutMs = 10_000): Promise<void> {
  await eventually(async () => {
    const cfg = await (await fetch(`http://${proxy.admin}/config`)).json() as { snapshot?: unknown };
    return cfg.snapshot ? predicate(cfg.snapshot) : false;
  }, timeoutMs, `${proxy.service} to hold ${what}`);
}

/**
 * Applies resources and waits until the proxies that should hold them do, by content (a version
 * change alone may be another push): routes on every given proxy, policies on the given proxies of
 * the service they target.
 */
export async function applyAndWait(
  cp: ControlPlaneRef, proxies: MeshProxy | MeshProxy[],
  resources: Array<{ apiVersion?: string; kind: string; metadata: { name: string }; spec: unknown }>,
): Promise<void> {
  await client(cp).apply(resources as never);
  const all = Array.isArray(proxies) ? proxies : [proxies];
  const field: Record<string, string> = { HTTPRoute: 'httpRoutes', TCPRoute: 'tcpRoutes', AuthorizationPolicy: 'authorizationPolicies', JWTAuthentication: 'jwtAuthentications' };
  for (const r of resources) {
    const list = field[r.kind];
    if (!list) continue;
    const target = (r.spec as { targetRef?: { name: string } }).targetRef?.name;
    for (const proxy of all.filter((p) => target === undefined || p.service === target)) {
      await waitForConfig(proxy, (s) => (s[list] as Array<{ metadata: { name: string }; spec: unknown }>).some((x) =>
        x.metadata.name === r.metadata.name && sameSpec(x.spec, r.spec)), `${r.kind}/${r.metadata.name}`);
    }
  }
}

/** True when every field set in `wanted` has the same value in `actual` (defaults may add fields). */
function sameSpec(actual: unknown, wanted: unknown): boolean {
  if (wanted === null || typeof wanted !== 'object') return actual === wanted;
  if (Array.isArray(wanted)) return Array.isArray(actual) && actual.length === wanted.length && wanted.every((w, i) => sameSpec(actual[i], w));
  if (actual === null || typeof actual !== 'object') return false;
  return Object.entries(wanted).every(([k, v]) => sameSpec((actual as Record<string, unknown>)[k], v));
}
