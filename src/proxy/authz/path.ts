/**
 * Request-path normalisation (SPEC §3, AuthorizationPolicy): done ONCE, at ingress
 * (listeners/ingress.ts), for every direction, and the normalised path is both what policies check
 * and what is forwarded — so the app never sees a path other than the one that was authorised.
 *
 * On the path component only (the query string is kept byte for byte, the fragment is dropped):
 *   1. path parameters are stripped from every segment: `/admin;x=1` → `/admin`, `/..;/` → `/../`;
 *   2. percent-encoded UNRESERVED characters (ALPHA DIGIT - . _ ~) are decoded: `/%61dmin` → `/admin`,
 *      `%2e%2e` → `..` (decoded before dot-segment removal, RFC 3986 §6.2.2.2);
 *      every other escape is kept encoded with upper-case hex (`%2f` → `%2F`): an encoded slash
 *      `%2F` (or backslash `%5C`) is NOT a separator and stays encoded;
 *   3. repeated slashes are merged: `//admin` → `/admin`;
 *   4. `.` and `..` segments are removed (RFC 3986 §5.2.4): `/public/../admin` → `/admin`.
 * Refused with 400 BAD_REQUEST: a path that climbs above the root (`/..`), a NUL (raw or `%00`),
 * an invalid escape (`%zz`, `%4`), or a target that does not start with `/` (except `*`).
 * The result is idempotent: normalising a normalised path changes nothing.
 * Matching on the result is case-sensitive: `/ADMIN` does not match the policy path `/admin`.
 */
import { MeshError } from '../../api/errors.js';

export interface NormalisedTarget {
  /** The normalised path component (what policies match on). */
  path: string;
  /** The query string with its leading `?`, untouched, or ''. */
  query: string;
  /** path + query: what is forwarded. */
  target: string;
}

const HEX = /^[0-9A-Fa-f]{2}$/;

function isUnreserved(code: number): boolean {
  return (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || (code >= 0x30 && code <= 0x39)
    || code === 0x2d || code === 0x2e || code === 0x5f || code === 0x7e;
}

function bad(reason: string): MeshError {
  return new MeshError('BAD_REQUEST', `invalid request path: ${reason}`);
}

/** Decodes unreserved escapes of one segment, upper-cases the others; throws on an invalid escape or NUL. */
function decodeSegment(seg: string): string {
  if (seg.indexOf('%') === -1) return seg;
  let out = '';
  for (let i = 0; i < seg.length; i++) {
    const ch = seg[i]!;
    if (ch !== '%') { out += ch; continue; }
    const hex = seg.slice(i + 1, i + 3);
    if (!HEX.test(hex)) throw bad(`invalid percent-encoding "${seg.slice(i, i + 3)}"`);
    const code = parseInt(hex, 16);
    if (code === 0) throw bad('NUL byte');
    out += isUnreserved(code) ? String.fromCharCode(code) : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return out;
}

/** Normalises a request target (`/path?query#fragment`); throws MeshError BAD_REQUEST (400). */
export function normaliseTarget(raw: string): NormalisedTarget {
  if (raw === '*') return { path: '*', query: '', target: '*' }; // OPTIONS *
  const hash = raw.indexOf('#');
  const noFragment = hash === -1 ? raw : raw.slice(0, hash);
  const q = noFragment.indexOf('?');
  const rawPath = q === -1 ? noFragment : noFragment.slice(0, q);
  const query = q === -1 ? '' : noFragment.slice(q);
  if (!rawPath.startsWith('/')) throw bad('it must start with "/"');
  if (rawPath.includes('\0')) throw bad('NUL byte');

  const segments = rawPath.slice(1).split('/');
  const out: string[] = [];
  let trailingSlash = false;
  for (let i = 0; i < segments.length; i++) {
    const last = i === segments.length - 1;
    let seg = segments[i]!;
    const semi = seg.indexOf(';');
    if (semi !== -1) seg = seg.slice(0, semi);
    seg = decodeSegment(seg);
    if (seg === '' || seg === '.') {
      if (last) trailingSlash = true;
      continue;
    }
    if (seg === '..') {
      if (out.length === 0) throw bad('it climbs above the root');
      out.pop();
      if (last) trailingSlash = true;
      continue;
    }
    out.push(seg);
    if (last) trailingSlash = false;
  }
  const path = out.length === 0 ? '/' : '/' + out.join('/') + (trailingSlash ? '/' : '');
  return { path, query, target: path + query };
}

/** Just the normalised path + query (what ingress forwards). */
export function normaliseRequestPath(raw: string): string {
  return normaliseTarget(raw).target;
}

/** The path component of an already-normalised target (no query). */
export function pathOnly(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}
