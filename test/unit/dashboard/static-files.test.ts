/**
 * The dashboard's static files at / (adapters/api/static-files.ts) on a real ApiServer: content types, caching,
 * ETags, the single-page-app fallback, 404s for missing assets, and no way out of the directory — raw `..`,
 * `%2e%2e`, encoded slashes and backslashes, NUL, malformed escapes and a symlink pointing outside. Without a bundle,
 * `/` says to run `npm run build`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiServer } from '../../../src/control-plane/adapters/api/server.js';
import { safeRelativePath } from '../../../src/control-plane/adapters/api/static-files.js';
import { createLogger } from '../../../src/shared/log.js';
import { tempDir } from '../control-plane/fixtures.js';

const SECRET = 'top-secret-outside-the-bundle';

/** One request with the target sent exactly as given (no client-side normalisation). */
function raw(address: string, target: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const [host, port] = [address.split(':')[0]!, Number(address.split(':')[1])];
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method: opts.method ?? 'GET', path: target, headers: opts.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function server(dashboardDir?: string): ApiServer {
  return new ApiServer({
    resources: {} as never, tokens: {} as never, queries: {} as never,
    metrics: { contentType: 'text/plain', text: async () => '' },
    status: () => ({}) as never, ready: () => true, adminToken: '', log: createLogger({ component: 'test' }),
    ...(dashboardDir ? { dashboardDir } : {}),
  });
}

describe('dashboard static files', () => {
  let api: ApiServer;
  let address: string;

  before(async () => {
    const base = await tempDir('trellis-static-');
    const root = join(base, 'dashboard');
    await mkdir(join(root, 'assets'), { recursive: true });
    await writeFile(join(root, 'index.html'), '<!doctype html><title>Trellis</title><div id="app"></div>');
    await writeFile(join(root, 'assets', 'index-AbC123.js'), 'console.log("app")');
    await writeFile(join(root, 'assets', 'index-AbC123.css'), 'body{}');
    await writeFile(join(root, 'favicon.svg'), '<svg/>');
    await writeFile(join(base, 'secret.txt'), SECRET);
    await symlink(join(base, 'secret.txt'), join(root, 'assets', 'leak.js'));
    await symlink(base, join(root, 'outside'));
    api = server(root);
    address = await api.listen('127.0.0.1', 0);
  });
  after(async () => { await api.close(); });

  it('serves index.html at / with a strict CSP and revalidation, and answers 304 to its ETag', async () => {
    const res = await raw(address, '/');
    assert.equal(res.status, 200);
    assert.match(res.body, /<div id="app">/);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.match(String(res.headers['content-security-policy']), /default-src 'self'/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    const again = await raw(address, '/', { headers: { 'if-none-match': String(res.headers.etag) } });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
    const head = await raw(address, '/', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(Number(head.headers['content-length']), res.body.length);
  });

  it('serves hashed assets with their content type, cached as immutable', async () => {
    const js = await raw(address, '/assets/index-AbC123.js');
    assert.equal(js.status, 200);
    assert.equal(js.body, 'console.log("app")');
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal((await raw(address, '/assets/index-AbC123.css')).headers['content-type'], 'text/css; charset=utf-8');
    assert.equal((await raw(address, '/favicon.svg')).headers['content-type'], 'image/svg+xml');
  });

  it('answers index.html for the app\'s own paths, 404 for missing files, 405 for other methods, and leaves /api/ to the API', async () => {
    for (const p of ['/routes', '/proxies', '/tap/', '/routes?x=1']) {
      const res = await raw(address, p);
      assert.equal(res.status, 200, p);
      assert.match(res.body, /<div id="app">/, p);
    }
    for (const p of ['/assets/missing.js', '/assets/other', '/missing.js', '/favicon.ico']) assert.equal((await raw(address, p)).status, 404, p);
    assert.equal((await raw(address, '/', { method: 'POST' })).status, 405);
    const apiMiss = await raw(address, '/api/v1/nothing');
    assert.equal(apiMiss.status, 404);
    assert.equal(JSON.parse(apiMiss.body).error, 'NOT_FOUND');
  });

  it('never leaves the directory: traversal attempts are refused, symlinks out are not followed', async () => {
    const attempts = [
      '/../../etc/passwd', '/../secret.txt', '/assets/../../secret.txt',
      '/%2e%2e/%2e%2e/etc/passwd', '/%2E%2E/secret.txt', '/..%2fsecret.txt', '/..%2F..%2Fetc%2Fpasswd',
      '/assets/..%2f..%2fsecret.txt', '/assets/%2e%2e%2f%2e%2e%2fsecret.txt', '/..%5csecret.txt', '/assets\\..\\..\\secret.txt',
      '/%00', '/index.html%00.js', '/%zz', '//etc/passwd', '/./index.html', '/assets/leak.js', '/outside/secret.txt',
    ];
    for (const p of attempts) {
      const res = await raw(address, p);
      assert.ok(res.status === 400 || res.status === 404, `${p} answered ${res.status}`);
      assert.ok(!res.body.includes(SECRET) && !res.body.includes('root:'), `${p} leaked`);
    }
  });

  it('safeRelativePath decodes once and refuses dot segments, NUL, backslashes and bad escapes', () => {
    assert.equal(safeRelativePath('/'), '');
    assert.equal(safeRelativePath('/assets/a.js'), 'assets/a.js');
    assert.equal(safeRelativePath('/routes/'), 'routes');
    assert.equal(safeRelativePath('/a%20b.js'), 'a b.js');
    for (const bad of ['/..', '/a/../b', '/%2e%2e/x', '/.', '/a//b', '/a\\b', '/a%5cb', '/a%00', '/%E0%A4%A', 'relative']) {
      assert.equal(safeRelativePath(bad), undefined, bad);
    }
  });

  it('without a built bundle, / says to run npm run build', async () => {
    const missing = server(join(await tempDir('trellis-nobundle-'), 'dashboard'));
    const addr = await missing.listen('127.0.0.1', 0);
    try {
      const res = await raw(addr, '/');
      assert.equal(res.status, 503);
      assert.match(res.body, /npm run build/);
      assert.equal((await raw(addr, '/healthz')).status, 200);
    } finally {
      await missing.close();
    }
  });
});
