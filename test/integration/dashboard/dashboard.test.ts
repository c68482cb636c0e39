/**
 * The web dashboard end to end, in a real browser: `trellis demo` runs as a child process (a real control plane,
 * six sidecars, the shop, steady traffic), Debian's Chromium (playwright-core) opens the dashboard the control plane
 * serves, and the test checks what a user sees:
 *   - the service graph shows the demo's services and the calls between them;
 *   - the golden metrics move while traffic flows (values and chart points change without a reload);
 *   - editing the canary's weights in the routes view: a refused value shows its field path, the dry run previews
 *     the change, Apply applies it, and the split measured on real traffic (live tap of catalog's proxies, through
 *     TrellisClient) follows;
 *   - a DENY AuthorizationPolicy applied on inventory and a request it refuses show up in the security view (policy
 *     and denial); the proxies view lists every proxy in sync with its certificate expiry; the tap view streams
 *     catalog's requests filtered by method and path; a reload on an app path serves the app again;
 *   - a 401 makes the app ask for the admin token and send it.
 * Screenshots go to test-results/dashboard/; with TRELLIS_UPDATE_SCREENSHOT=1 the README's docs/images/dashboard.png
 * is rewritten too. Every wait is on a condition (generous timeouts for a loaded machine), never a fixed sleep.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { startProcess, stopAll, REPO_ROOT, type StartedProcess } from '../../helpers/processes.js';
import { launchChromium, type Browser } from '../../helpers/browser.js';
import { pollUntil } from '../../../src/shared/poll.js';
import { TrellisClient } from '../../../src/sdk/client.js';

const SHOTS = join(REPO_ROOT, 'test-results', 'dashboard');
const README_SHOT = join(REPO_ROOT, 'docs', 'images', 'dashboard.png');
const SERVICES = ['web', 'catalog', 'inventory', 'checkout', 'payments'];
const EDGES = ['web->catalog', 'web->checkout', 'catalog->inventory', 'checkout->payments'];
/** Waits for things the mesh does (stats every 5 s, config pushes) on a machine shared with other work. */
const SLOW = 90_000;

async function shot(page: Page, name: string): Promise<string> {
  const file = join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** GET http://SERVICE/PATH through a sidecar's HTTP proxy listener (absolute-form), as the shop's services do. */
function getViaProxy(proxy: string, service: string, path: string): Promise<number> {
  const colon = proxy.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: proxy.slice(0, colon), port: Number(proxy.slice(colon + 1)), path: `http://${service}${path}`,
      headers: { host: service }, agent: false, timeout: 10_000,
    }, (res) => { res.resume().on('end', () => resolve(res.statusCode ?? 0)); });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Share of catalog's inbound requests answered by the v2 instance, over the next `n` requests seen by live tap. */
async function measuredV2Share(client: TrellisClient, n: number): Promise<{ v2: number; total: number }> {
  const { proxies } = await client.proxies();
  const version = new Map(proxies.filter((p) => p.service === 'catalog').map((p) => [p.instanceId, p.labels.version]));
  assert.equal(version.size, 2, 'two catalog instances');
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), SLOW);
  let v2 = 0;
  let total = 0;
  try {
    for await (const msg of client.tap({ service: 'catalog', method: 'GET' }, { signal: abort.signal })) {
      if (msg.type !== 'tap' || msg.event.direction !== 'inbound') continue;
      const v = version.get(msg.event.instance);
      if (!v) continue;
      total++;
      if (v === 'v2') v2++;
      if (total >= n) break;
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  assert.equal(total, n, `tapped ${total} of ${n} catalog requests before the timeout`);
  return { v2, total };
}

describe('web dashboard in Chromium against the running demo', { timeout: 420_000 }, () => {
  let demo: StartedProcess;
  let client: TrellisClient;
  let base: string;
  let browser: Browser;
  let page: Page;

  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    demo = await startProcess(['demo', '--api', '127.0.0.1:0', '--rate', '25', '--duration', '400s'], { expect: ['api'], timeoutMs: 60_000 });
    await demo.waitForLine((l) => l.includes('"event":"ready"'), 60_000);
    base = `http://${demo.listening.api}`;
    client = new TrellisClient({ baseUrl: base });
    browser = await launchChromium({ width: 1440, height: 900 });
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    if (demo) {
      const code = await demo.stop('SIGINT');
      assert.equal(code, 0, `the demo stops cleanly\n${demo.stderr()}`);
    }
    await stopAll();
  });

  it('shows the live service graph with the demo\'s services and calls', async () => {
    await page.goto(`${base}/`);
    await page.locator('[data-testid=connection][data-state=live]').waitFor({ timeout: SLOW });
    for (const s of SERVICES) await page.locator(`[data-testid=graph-node][data-service="${s}"]`).waitFor({ timeout: SLOW });
    for (const e of EDGES) await page.locator(`[data-testid=graph-edge][data-edge="${e}"]`).waitFor({ timeout: SLOW });
    // Edges carry real traffic: a positive rate and a label with req/s and p99.
    const edge = page.locator('[data-testid=graph-edge][data-edge="web->catalog"]');
    await pollUntil(async () => Number(await edge.getAttribute('data-rps')) > 0, { what: 'web→catalog to show traffic', timeoutMs: SLOW, intervalMs: 250 });
    assert.match(await edge.locator('text').textContent() ?? '', /\/s · p99 \d/);
    assert.match(await edge.getAttribute('class') ?? '', /\bok\b/, 'a healthy edge is coloured as such');
  });

  it('golden metrics move without a reload', async () => {
    const card = page.locator('[data-testid=metrics-card][data-service=web]');
    await card.waitFor({ timeout: SLOW });
    const updates = async () => Number(await page.locator('[data-testid=connection]').getAttribute('data-updates'));
    const first = { requests: await card.getAttribute('data-requests'), rps: await card.locator('[data-testid=kpi-rps]').textContent(), updates: await updates() };
    const chart = card.locator('.spark').first();
    const firstPoints = Number(await chart.getAttribute('data-points') ?? 0);
    // New overviews arrive over SSE and the numbers change as traffic flows.
    await pollUntil(async () => {
      const requests = await card.getAttribute('data-requests');
      const rps = await card.locator('[data-testid=kpi-rps]').textContent();
      return (await updates()) >= first.updates + 3 && Number(requests) > 0 && (requests !== first.requests || rps !== first.rps);
    }, { what: 'web\'s golden metrics to change', timeoutMs: SLOW, intervalMs: 250 });
    await pollUntil(async () => Number(await chart.getAttribute('data-points')) > Math.max(firstPoints, 4), { what: 'the charts to gain points', timeoutMs: SLOW, intervalMs: 250 });
    const overview = await shot(page, 'overview');
    if (process.env.TRELLIS_UPDATE_SCREENSHOT === '1') {
      await mkdir(join(REPO_ROOT, 'docs', 'images'), { recursive: true });
      await copyFile(overview, README_SHOT);
    }
  });

  it('changing the canary weights in the routes view changes the measured split', async () => {
    const before = await measuredV2Share(client, 100);
    assert.ok(before.v2 <= 35, `at 90/10, catalog v2 answered ${before.v2} of ${before.total}`);

    await page.locator('nav a', { hasText: 'Routes' }).click();
    const card = page.locator('[data-testid=route-card][data-route=catalog-canary]');
    await card.waitFor({ timeout: SLOW });
    const v1 = card.locator('[data-testid=weight-input][data-backend="catalog version=v1"]');
    const v2 = card.locator('[data-testid=weight-input][data-backend="catalog version=v2"]');
    assert.equal(await v1.inputValue(), '90');
    assert.equal(await v2.inputValue(), '10');

    // A refused value: the API's validation (the same as `trellis apply`) names the field.
    await v2.fill('-5');
    await card.locator('[data-testid=preview-button]').click();
    const errors = card.locator('[data-testid=apply-errors]');
    await errors.waitFor({ timeout: SLOW });
    assert.match(await errors.textContent() ?? '', /resources\[0\]\.spec\.rules\[0\]\.backendRefs\[1\]\.weight/);

    // The dry run previews the change; nothing is applied yet.
    await v1.fill('20');
    await v2.fill('80');
    await card.locator('[data-testid=preview-button]').click();
    const preview = card.locator('[data-testid=preview-result]');
    await preview.waitFor({ timeout: SLOW });
    const previewText = await preview.textContent() ?? '';
    assert.match(previewText, /HTTPRoute\/catalog-canary: would be configured/);
    assert.match(previewText, /version=v2: weight 10 \(10%\) → 80 \(80%\)/);
    const unchanged = await client.get('HTTPRoute', 'catalog-canary') as unknown as { spec: { rules: { backendRefs: { weight: number }[] }[] } };
    assert.deepEqual(unchanged.spec.rules[0]!.backendRefs.map((b) => b.weight), [90, 10], 'a dry run changes nothing');
    await shot(page, 'routes-preview');

    const versionBefore = (await client.proxies()).version;
    await card.locator('[data-testid=apply-button]').click();
    await card.locator('[data-testid=apply-result]').waitFor({ timeout: SLOW });
    const applied = await client.get('HTTPRoute', 'catalog-canary') as unknown as { spec: { rules: { backendRefs: { weight: number }[] }[] } };
    assert.deepEqual(applied.spec.rules[0]!.backendRefs.map((b) => b.weight), [20, 80]);
    // The view shows the stored weights once the next overview arrives.
    await pollUntil(async () => (await card.locator('[data-testid=backend-row][data-backend="catalog version=v2"] [data-testid=share]').textContent()) === '80%'
      && (await v2.inputValue()) === '80', { what: 'the routes view to show 80%', timeoutMs: SLOW, intervalMs: 250 });
    await shot(page, 'routes-applied');

    // Real traffic follows once web's sidecar (catalog's caller) has ACKed the new config.
    await pollUntil(async () => {
      const { version, proxies } = await client.proxies();
      return version !== versionBefore && proxies.filter((p) => p.service === 'web').every((p) => p.ackedVersion === version);
    }, { what: 'web\'s sidecar to ACK the new split', timeoutMs: SLOW, intervalMs: 250 });
    const afterShare = await measuredV2Share(client, 100);
    // 80% expected; at the old 10%, 55 or more of 100 is out of reach of chance.
    assert.ok(afterShare.v2 >= 55, `at 20/80, catalog v2 answered ${afterShare.v2} of ${afterShare.total} (before: ${before.v2})`);
  });

  it('shows authorization policies and the denials they cause, proxies, and a filtered live tap', async () => {
    // A DENY policy on inventory, and a request it refuses: web's sidecar asks inventory for /admin/...
    await client.apply([{
      apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'inventory-deny-admin' },
      spec: { targetRef: { name: 'inventory' }, action: 'DENY', rules: [{ to: [{ paths: ['/admin/*'] }] }] },
    }]);
    const webProxy = demo.listening['http-proxy:web']!;
    assert.ok(webProxy, 'the demo announces web\'s sidecar HTTP proxy');
    await pollUntil(async () => (await getViaProxy(webProxy, 'inventory', '/admin/keys')) === 403, { what: 'inventory to deny /admin/keys', timeoutMs: SLOW, intervalMs: 250 });

    await page.locator('nav a', { hasText: 'Security' }).click();
    await page.locator('[data-testid=policy-row][data-policy=inventory-deny-admin]').waitFor({ timeout: SLOW });
    assert.match(await page.locator('[data-testid=policy-row][data-policy=inventory-deny-admin]').textContent() ?? '', /inventory.*DENY.*\/admin\/\*/);
    // Denials reach the control plane with the proxies' stats (every 5 s) and the view with the next overview.
    const denial = page.locator('[data-testid=denial-row]', { hasText: '/admin/keys' }).first();
    await denial.waitFor({ timeout: SLOW });
    assert.match(await denial.textContent() ?? '', /web → inventory.*GET \/admin\/keys.*inventory-deny-admin/);
    await shot(page, 'security');

    await page.locator('nav a', { hasText: 'Proxies' }).click();
    const rows = page.locator('[data-testid=proxy-row]');
    await pollUntil(async () => (await rows.count()) >= 6, { what: 'six proxies listed', timeoutMs: SLOW, intervalMs: 250 });
    const table = await page.locator('[data-testid=proxies]').textContent() ?? '';
    for (const s of SERVICES) assert.ok(table.includes(s), `proxy of ${s} listed`);
    await pollUntil(async () => (await page.locator('[data-testid=proxy-row] .badge', { hasText: 'in sync' }).count()) >= 6, { what: 'every proxy in sync', timeoutMs: SLOW, intervalMs: 250 });
    assert.match(table, /in \d+h/, 'certificate expiry shown');
    const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(await page.locator('[data-testid=proxy-row] td:nth-child(4)', { hasText: version }).count(), await rows.count(), 'every proxy reports its version');
    await shot(page, 'proxies');

    await page.locator('nav a', { hasText: 'Tap' }).click();
    await page.locator('[data-testid=tap-service]').selectOption('catalog');
    await page.locator('[data-testid=tap-method]').selectOption('GET');
    await page.locator('[data-testid=tap-path]').fill('/');
    await page.locator('[data-testid=tap-start]').click();
    const tapRows = page.locator('[data-testid=tap-row]');
    await pollUntil(async () => (await tapRows.count()) >= 10, { what: 'tap rows for catalog', timeoutMs: SLOW, intervalMs: 250 });
    const firstRow = await tapRows.first().textContent() ?? '';
    assert.match(firstRow, /catalog/);
    assert.match(firstRow, /GET \//);
    assert.match(await page.locator('[data-testid=tap-status]').textContent() ?? '', /tapping catalog · [23] proxies/);
    await shot(page, 'tap');
    await page.locator('[data-testid=tap-stop]').click();
    // A reload on an app path is answered by index.html (the SPA fallback) and shows the same view.
    await page.reload();
    await page.locator('[data-testid=tap-start]').waitFor({ timeout: SLOW });
    assert.deepEqual(browser.errors, [], 'no page or console errors');
  });

  it('asks for the admin token when the API answers 401, and sends it', async () => {
    // The demo's API is on loopback (no token needed): make it answer 401 as a non-loopback API would, until a token comes.
    const seen: (string | undefined)[] = [];
    await page.route('**/api/v1/events**', async (route) => {
      const auth = route.request().headers().authorization;
      seen.push(auth);
      if (auth === 'Bearer s3cret-token') return route.continue();
      return route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ error: 'UNAUTHENTICATED', message: 'send Authorization: Bearer <admin token>' }) });
    });
    await page.goto(`${base}/`);
    const prompt = page.locator('[data-testid=token-prompt]');
    await prompt.waitFor({ timeout: SLOW });
    await prompt.locator('input').fill('s3cret-token');
    await prompt.locator('button[type=submit]').click();
    await page.locator('[data-testid=connection][data-state=live]').waitFor({ timeout: SLOW });
    assert.ok(seen.includes('Bearer s3cret-token'));
    assert.equal(await page.evaluate('sessionStorage.getItem("trellis.adminToken")'), 's3cret-token');
    await page.unroute('**/api/v1/events**');
  });
});
