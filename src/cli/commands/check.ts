/**
 * `trellis check [-o table|yaml|json]`: diagnostics with a hint per failure; exit 1 on any failure.
 *
 *   control plane   /healthz and /readyz answer
 *   CA              valid, not expiring within 30 days (GET /api/v1/status)
 *   proxies         every registered proxy connected
 *   config          every connected proxy ACKed the current version, no outstanding NACK
 *   certificates    no proxy certificate expired or within 10% (of MeshConfig certificateTTL) of expiry
 *   clock           the control plane's Date header within 5s of local time
 */
import { parseDuration } from '../../api/duration.js';
import { TrellisApiError, type ProxiesResponse, type TrellisClient } from '../../sdk/client.js';
import { renderTable, toJson, toYaml, type OutputFormat } from '../output.js';
import { outstandingNack } from './proxy-config.js';
import { clientFor, type ClientCliOptions } from './resources.js';

export interface CheckResult { name: string; ok: boolean; detail: string; hint?: string }

const DAY_MS = 86_400_000;
export const CA_MIN_REMAINING_MS = 30 * DAY_MS;
export const MAX_CLOCK_SKEW_MS = 5000;

const fail = (name: string, detail: string, hint: string): CheckResult => ({ name, ok: false, detail, hint });
const pass = (name: string, detail: string): CheckResult => ({ name, ok: true, detail });

function days(ms: number): string {
  return ms >= DAY_MS ? `${Math.floor(ms / DAY_MS)}d` : ms >= 3_600_000 ? `${Math.floor(ms / 3_600_000)}h` : `${Math.max(0, Math.floor(ms / 60_000))}m`;
}

function list(items: string[], max = 5): string {
  return items.slice(0, max).join(', ') + (items.length > max ? ` and ${items.length - max} more` : '');
}

export function checkCa(notAfter: string, now: number): CheckResult {
  const left = Date.parse(notAfter) - now;
  if (!(left > 0)) return fail('CA certificate', `expired at ${notAfter}`, 'the mesh CA has expired: no certificate verifies; restart the control plane with a new CA (--ca-cert/--ca-key) and rejoin the proxies');
  if (left < CA_MIN_REMAINING_MS) return fail('CA certificate', `expires in ${days(left)} (${notAfter})`, 'the mesh CA expires within 30 days: plan a rotation (new CA via --ca-cert/--ca-key, then rejoin the proxies)');
  return pass('CA certificate', `valid until ${notAfter} (${days(left)} left)`);
}

export function checkProxiesConnected(res: ProxiesResponse): CheckResult {
  const down = res.proxies.filter((p) => !p.connected);
  if (res.proxies.length === 0) return pass('proxies connected', 'no proxies registered');
  if (down.length > 0) {
    return fail('proxies connected', `${down.length}/${res.proxies.length} disconnected: ${list(down.map((p) => `${p.instanceId} (${p.service}${p.disconnectedAt ? `, since ${p.disconnectedAt}` : ''})`))}`,
      'the proxy process is down or cannot reach the control plane\'s --xds address: check it is running and its logs; an instance gone for good leaves the registry after the grace period');
  }
  return pass('proxies connected', `${res.proxies.length}/${res.proxies.length} connected`);
}

export function checkProxiesInSync(res: ProxiesResponse): CheckResult {
  // Proxies on another control plane (shared etcd) have that one's versions: checked by asking it.
  const connected = res.proxies.filter((p) => p.connected && !p.connectedElsewhere);
  const elsewhere = res.proxies.filter((p) => p.connected && p.connectedElsewhere).length;
  const others = elsewhere > 0 ? `; ${elsewhere} on other control planes (run check against them)` : '';
  const nacked = connected.filter((p) => outstandingNack(p));
  const stale = connected.filter((p) => !outstandingNack(p) && p.ackedVersion !== res.version);
  if (nacked.length > 0) {
    return fail('config in sync', `${nacked.length} proxy(ies) refused a config: ${list(nacked.map((p) => `${p.instanceId} NACKed v${p.lastNack!.version}: ${p.lastNack!.error}`), 3)}`,
      'the proxy keeps its last good config: fix the resource the error names (`trellis get`/`trellis apply`), then check `trellis proxy-config SERVICE`');
  }
  if (stale.length > 0) {
    return fail('config in sync', `${stale.length} proxy(ies) not at v${res.version}: ${list(stale.map((p) => `${p.instanceId} acked ${p.ackedVersion ?? 'nothing'}`))}`,
      'the proxy has not acknowledged the current config: check its config stream (proxy logs, `trellis proxy-config SERVICE`)');
  }
  return pass('config in sync', (connected.length ? `${connected.length} connected proxy(ies) at v${res.version}` : `current version v${res.version}; no connected proxies`) + others);
}

export function checkProxyCertificates(res: ProxiesResponse, certTtlMs: number, now: number): CheckResult {
  const expired: string[] = [];
  const expiring: string[] = [];
  let known = 0;
  for (const p of res.proxies) {
    if (!p.connected || !p.certNotAfter) continue;
    known++;
    const left = Date.parse(p.certNotAfter) - now;
    if (!(left > 0)) expired.push(`${p.instanceId} (expired ${p.certNotAfter})`);
    else if (left < certTtlMs * 0.1) expiring.push(`${p.instanceId} (${days(left)} left)`);
  }
  if (expired.length > 0) {
    return fail('proxy certificates', `expired: ${list(expired)}`, 'renewal failed: the proxy cannot serve mTLS; check that it reaches the control plane\'s --xds address, then restart it with a fresh join token');
  }
  if (expiring.length > 0) {
    return fail('proxy certificates', `within 10% of expiry: ${list(expiring)}`, 'proxies renew at 50–70% of the lifetime, so renewal is failing: check the proxy logs and its connectivity to --xds');
  }
  return pass('proxy certificates', known ? `${known} valid, none within 10% of expiry` : 'no proxy certificates reported');
}

/** `serverDate` has a 1s resolution: the server's time was in [serverDate, serverDate + 1s) when it answered. */
export function checkClock(serverDate: Date | undefined, sentAt: number, receivedAt: number): CheckResult {
  if (!serverDate) return fail('clock skew', 'the control plane sent no Date header', 'put nothing between the CLI and the API that strips the Date header');
  const server = serverDate.getTime();
  // The smallest skew consistent with the observation: the answer left between sentAt and receivedAt.
  const skew = server + 999 < sentAt ? sentAt - (server + 999) : server > receivedAt ? server - receivedAt : 0;
  if (skew > MAX_CLOCK_SKEW_MS) {
    return fail('clock skew', `the control plane's clock is ${(skew / 1000).toFixed(1)}s ${server > receivedAt ? 'ahead of' : 'behind'} this host's`,
      'synchronise the clocks (NTP): certificates and join tokens are time-bound and skew makes them look not yet valid or expired');
  }
  return pass('clock skew', `within ${MAX_CLOCK_SKEW_MS / 1000}s (${serverDate.toUTCString()})`);
}

export async function runChecks(client: TrellisClient, opts: { syncRetries?: number; syncRetryMs?: number } = {}): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  try {
    await client.health();
    results.push(pass('control plane /healthz', `${client.baseUrl} alive`));
  } catch (err) {
    const e = err as TrellisApiError;
    results.push(fail('control plane /healthz', e.message, e.code === 'UNREACHABLE'
      ? 'start it (`trellis control-plane`) or point the CLI at it with --api URL or $TRELLIS_API'
      : 'the API answered an error: check the control plane logs'));
    return results;
  }
  try {
    await client.ready();
    results.push(pass('control plane /readyz', 'ready'));
  } catch (err) {
    results.push(fail('control plane /readyz', (err as Error).message, 'the control plane is starting or shutting down: check its logs and retry'));
  }
  const now = Date.now();
  try {
    const status = await client.status();
    results.push(checkCa(status.ca.notAfter, now));
  } catch (err) {
    results.push(fail('CA certificate', (err as Error).message, apiHint(err)));
  }
  try {
    let proxies = await client.proxies();
    // A push may be in flight (a proxy just joined or left): give the ACKs a moment before failing.
    for (let i = 0; i < (opts.syncRetries ?? 3) && !checkProxiesInSync(proxies).ok; i++) {
      await new Promise((r) => setTimeout(r, opts.syncRetryMs ?? 500));
      proxies = await client.proxies();
    }
    results.push(checkProxiesConnected(proxies));
    results.push(checkProxiesInSync(proxies));
    let ttlMs = DAY_MS;
    try {
      const mesh = (await client.list('MeshConfig'))[0];
      if (mesh?.kind === 'MeshConfig') ttlMs = parseDuration(mesh.spec.certificateTTL);
    } catch { /* the default 24h */ }
    results.push(checkProxyCertificates(proxies, ttlMs, Date.now()));
  } catch (err) {
    results.push(fail('proxies', (err as Error).message, apiHint(err)));
  }
  try {
    const t = await client.serverTime();
    results.push(checkClock(t.serverDate, t.sentAt, t.receivedAt));
  } catch (err) {
    results.push(fail('clock skew', (err as Error).message, apiHint(err)));
  }
  return results;
}

function apiHint(err: unknown): string {
  if (err instanceof TrellisApiError && err.status === 401) return 'set $TRELLIS_ADMIN_TOKEN (file admin-token in the control plane\'s data dir)';
  return 'check the control plane logs';
}

export function formatChecks(results: CheckResult[], format: OutputFormat): string {
  const ok = results.every((r) => r.ok);
  if (format === 'json') return toJson({ ok, checks: results });
  if (format === 'yaml') return toYaml({ ok, checks: results });
  let text = renderTable(['CHECK', 'RESULT', 'DETAIL'], results.map((r) => [r.name, r.ok ? 'ok' : 'FAIL', r.detail]));
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) {
    text += '\n' + failed.map((r) => `hint (${r.name}): ${r.hint ?? ''}`).join('\n') + '\n';
  }
  text += ok ? '\nAll checks passed.\n' : `\n${failed.length} check(s) failed.\n`;
  return text;
}

export async function runCheck(opts: ClientCliOptions & { output: OutputFormat }): Promise<void> {
  const results = await runChecks(clientFor(opts));
  process.stdout.write(formatChecks(results, opts.output));
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}
