/**
 * Serves the built web dashboard (dist/dashboard, made by `npm run build`) at the API's `/`:
 *   - files by path, with their content type; `/assets/*` (content-hashed names) cached for a year, immutable;
 *     everything else (index.html) revalidated every time (ETag → 304);
 *   - any other GET/HEAD path that is not a file and has no extension → index.html (the single-page app's routes);
 *   - no way out of the directory: the path is decoded once, `..`, backslashes, NUL and malformed escapes are refused
 *     (400), and the resolved real path must still be inside the root (symlinks included);
 *   - when the bundle is missing, `/` answers 503 with a message saying to run `npm run build`.
 * Static files carry no secrets, so they are served without the admin token; the API calls the app makes need it.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import type http from 'node:http';
import { extname, join, sep } from 'node:path';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** Content-Security-Policy of the dashboard: its own scripts only, API calls to the same origin only. */
export const DASHBOARD_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const MISSING_BUNDLE_MESSAGE = [
  'Trellis control plane',
  '',
  'The web dashboard is not built: run `npm run build` (or `npm ci`, which builds it) in the trellis package, then reload.',
  '',
  'API: /api/v1 (OpenAPI at /api/openapi.json)',
  'Metrics: /metrics',
  'Health: /healthz, /readyz',
  '',
].join('\n');

export type StaticResult = 'served' | 'not-found';

export class StaticFiles {
  private realRoot?: Promise<string | undefined>;

  /** `root`: the built dashboard directory (it may not exist). */
  constructor(private readonly root: string) {}

  /** The root's real path, or undefined when there is no built index.html. Re-checked while missing. */
  private async resolveRoot(): Promise<string | undefined> {
    const attempt = this.realRoot ??= (async () => {
      try {
        const real = await fsp.realpath(this.root);
        await fsp.access(join(real, 'index.html'));
        return real;
      } catch {
        return undefined;
      }
    })();
    const root = await attempt;
    if (root === undefined) this.realRoot = undefined;
    return root;
  }

  /**
   * Answers a GET or HEAD for `rawPath` (the URL's pathname, still percent-encoded). Never throws for a bad path:
   * answers 400. Other methods get 405.
   */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, rawPath: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${method} is not allowed here\n`);
      return;
    }
    const rel = safeRelativePath(rawPath);
    if (rel === undefined) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('bad path\n');
      return;
    }
    const root = await this.resolveRoot();
    if (root === undefined) {
      res.writeHead(rel === '' ? 503 : 404, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(MISSING_BUNDLE_MESSAGE);
      return;
    }
    let file = rel === '' ? 'index.html' : rel;
    let found = await this.fileInside(root, file);
    if (!found && !rel.startsWith('assets/') && extname(rel) === '') {
      file = 'index.html';
      found = await this.fileInside(root, file);
    }
    if (!found) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found\n');
      return;
    }
    const { path, size, mtimeMs } = found;
    const etag = `"${size.toString(16)}-${Math.floor(mtimeMs).toString(16)}"`;
    const headers: Record<string, string | number> = {
      'content-type': CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'x-content-type-options': 'nosniff',
      'cache-control': file.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
      etag,
    };
    if (file.endsWith('.html')) {
      headers['content-security-policy'] = DASHBOARD_CSP;
      headers['x-frame-options'] = 'DENY';
      headers['referrer-policy'] = 'no-referrer';
    }
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    headers['content-length'] = size;
    res.writeHead(200, headers);
    if (method === 'HEAD') { res.end(); return; }
    const stream = createReadStream(path);
    stream.on('error', () => res.destroy());
    res.on('close', () => stream.destroy());
    stream.pipe(res);
  }

  /** The file's real path and stat when it is a regular file whose real path is inside `root`. */
  private async fileInside(root: string, rel: string): Promise<{ path: string; size: number; mtimeMs: number } | undefined> {
    try {
      const real = await fsp.realpath(join(root, rel));
      if (!real.startsWith(root + sep)) return undefined;
      const st = await fsp.stat(real);
      return st.isFile() ? { path: real, size: st.size, mtimeMs: st.mtimeMs } : undefined;
    } catch {
      return undefined;
    }
  }
}

/**
 * The path below the root ('' for `/`), or undefined when it must be refused: a malformed escape, NUL, a backslash,
 * a `.` or `..` segment (after decoding, so `%2e%2e` and `..%2f` are caught too), or an empty segment.
 */
export function safeRelativePath(rawPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return undefined;
  }
  if (!decoded.startsWith('/') || decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const rel = decoded.slice(1);
  if (rel === '') return '';
  const segments = rel.split('/');
  // A trailing slash (`/services/`) is allowed; other empty segments (`//x`, `/a//b`) are not.
  if (segments[segments.length - 1] === '') segments.pop();
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return undefined;
  return segments.join('/');
}
