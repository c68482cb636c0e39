/**
 * Modules a proxy loads only when a config needs them, never at start: a proxy whose mesh uses no such
 * feature does not pay their memory (docs/dependencies.md, "Loaded on demand"). Filter factories are
 * synchronous (they run while a version compiles), so the config-apply path awaits this before it
 * compiles: a config never waits for a module at compile time, nor a request at run time.
 *
 *   JWTAuthentication  jose's JWS verification, JWKS and key import (authz/jwt.ts)
 *   an HTTP/1.1 service undici's connection pool, the HTTP/1.1 client (upstream/undici-pool.ts)
 */
import { loadJwtVerification } from '../authz/jwt.js';
import { loadHttp1Client } from '../upstream/undici-pool.js';

const hasItems = (v: unknown): boolean => Array.isArray(v) && v.length > 0;

/**
 * Loads what a raw (not yet validated) Snapshot or SnapshotDelta needs; undefined when nothing is to
 * load. Malformed input loads nothing more: validation refuses it next.
 */
export function loadModulesFor(raw: unknown): Promise<void> | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  if (hasHttp1Cluster((raw as { clusters?: unknown }).clusters)) loadHttp1Client(); // synchronous
  if (hasItems((raw as { jwtAuthentications?: unknown }).jwtAuthentications)) return loadJwtVerification();
  return undefined;
}

function hasHttp1Cluster(clusters: unknown): boolean {
  if (typeof clusters !== 'object' || clusters === null) return false;
  for (const cluster of Object.values(clusters)) {
    if ((cluster as { protocol?: unknown } | null)?.protocol === 'http') return true;
  }
  return false;
}
