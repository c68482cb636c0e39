/**
 * The authorization engine (SPEC §3, AuthorizationPolicy; MeshConfig authorization.default): pure, no
 * I/O. Compiled once per config version from the policies targeting one service; the proxy's
 * authorization filter and `trellis can-i` build the very same engine, so they cannot disagree.
 *
 * Decision, in order:
 *   1. AUDIT policies: every AUDIT policy with a matching rule is recorded in `audits` (never blocks);
 *   2. DENY: the first DENY policy (by name) with a matching rule denies — DENY wins over ALLOW;
 *   3. ALLOW: when any ALLOW policy targets the service, the first one with a matching rule allows,
 *      and a request no ALLOW rule matches is denied (action NO_ALLOW_MATCH);
 *   4. otherwise MeshConfig authorization.default: `allow` allows any verified mesh identity,
 *      `deny` denies (action DEFAULT). A caller WITHOUT identity (plaintext, which only reaches the
 *      engine under MeshConfig `mtls: PERMISSIVE`) is allowed by `allow` when the engine is compiled
 *      for PERMISSIVE — what PERMISSIVE is for, migrating clients from outside the mesh — and denied
 *      by it under STRICT (where the inbound listener refuses such a caller before any request).
 *
 * A caller without identity matches no rule that has a `from`: each `from` entry needs a verified
 * identity (an entry `{}` means "any mesh identity"). So under PERMISSIVE an ALLOW policy whose rules
 * all name sources, or `default: deny`, keeps plaintext callers out, and a rule without `from` (only
 * `to`/`when`) matches them like anyone.
 *
 * Rule matching: a rule matches when its `from`, `to` and `when` all match; an absent or empty part
 * matches everything, so a rule `{}` matches every request, while a policy with no rules matches none.
 *  - from[]: any entry; an entry's `services` and `identities` are checked against the VERIFIED peer
 *    identity (from its certificate) only, and both must hold when both are set; no identity, no match;
 *  - to[]: any entry; an entry's `methods`, `paths` and `ports` must all hold. A path is exact, or a
 *    prefix ending in `*`; `/admin/*` also matches `/admin` itself. Paths are compared with the
 *    normalised request path (authz/path.ts), without the query, case-sensitively;
 *    `ports` compare with the destination service's declared port (Service.spec.port): without one,
 *    a rule that names ports never matches;
 *  - when[]: every condition must hold; a condition holds when the value of its key is any of
 *    `values`. `request.headers[NAME]` (case-insensitive name; any value of a repeated header),
 *    `jwt.claims.NAME` (claims verified by the jwt-authentication filter; a dotted NAME that is not a
 *    claim itself walks nested objects; array claims match when any element matches; numbers and
 *    booleans compare as strings). Without verified claims, a jwt condition never holds.
 */
import type { ResourceOf } from '../../api/schema/resources.js';
import { byName } from '../../api/resource-order.js';

export type AuthorizationPolicy = ResourceOf<'AuthorizationPolicy'>;
export type DefaultAction = 'allow' | 'deny';
/** MeshConfig mtls: whether callers without a mesh identity (plaintext) can reach the inbound side at all. */
export type MtlsMode = 'STRICT' | 'PERMISSIVE';

export interface AuthzAttributes {
  /** Verified SPIFFE ID of the caller (from its certificate), if any. */
  sourceIdentity?: string | undefined;
  /** The caller's service, parsed from the verified identity. */
  sourceService?: string | undefined;
  method: string;
  /** Normalised path, without the query string. */
  path: string;
  /** Destination port (the service's declared port), when known. */
  port?: number | undefined;
  /** Lower-case header names. */
  headers: Record<string, string | string[] | undefined>;
  /** Verified JWT claims, when a JWTAuthentication verified a token. */
  jwtClaims?: Record<string, unknown> | undefined;
}

export type DecisionAction = 'ALLOW' | 'DENY' | 'NO_ALLOW_MATCH' | 'DEFAULT';

export interface AuthzDecision {
  decision: 'allow' | 'deny';
  /** The deciding policy (ALLOW / DENY). */
  policy?: string;
  /** Index of the deciding rule in that policy. */
  rule?: number;
  action: DecisionAction;
  /** One human sentence, used in the 403 message and by can-i. */
  reason: string;
  /** AUDIT policies that matched, with their first matching rule. */
  audits: Array<{ policy: string; rule: number }>;
}

type Matcher = (a: AuthzAttributes) => boolean;

interface CompiledPolicy {
  name: string;
  rules: Matcher[];
}

export interface AuthzEngine {
  readonly service: string;
  readonly defaultAction: DefaultAction;
  readonly mtls: MtlsMode;
  readonly policyCount: number;
  /** True when no request can be refused: no policies and default allow (the filter is then skipped). */
  readonly allowsEverything: boolean;
  evaluate(attrs: AuthzAttributes): AuthzDecision;
}


export function compileAuthz(service: string, policies: readonly AuthorizationPolicy[], defaultAction: DefaultAction, mtls: MtlsMode = 'STRICT'): AuthzEngine {
  const mine = policies.filter((p) => p.spec.targetRef.name === service).sort(byName);
  const compile = (action: 'ALLOW' | 'DENY' | 'AUDIT'): CompiledPolicy[] => mine
    .filter((p) => p.spec.action === action)
    .map((p) => ({ name: p.metadata.name, rules: p.spec.rules.map(compileRule) }));
  const allow = compile('ALLOW');
  const deny = compile('DENY');
  const audit = compile('AUDIT');

  const firstMatch = (list: CompiledPolicy[], a: AuthzAttributes): { policy: string; rule: number } | undefined => {
    for (const p of list) {
      const i = p.rules.findIndex((m) => m(a));
      if (i !== -1) return { policy: p.name, rule: i };
    }
    return undefined;
  };

  return {
    service,
    defaultAction,
    mtls,
    policyCount: mine.length,
    allowsEverything: mine.length === 0 && defaultAction === 'allow',
    evaluate(a: AuthzAttributes): AuthzDecision {
      const audits: AuthzDecision['audits'] = [];
      for (const p of audit) {
        const i = p.rules.findIndex((m) => m(a));
        if (i !== -1) audits.push({ policy: p.name, rule: i });
      }
      const denied = firstMatch(deny, a);
      if (denied) {
        return { decision: 'deny', ...denied, action: 'DENY', reason: `denied by AuthorizationPolicy "${denied.policy}" rule ${denied.rule} (DENY)`, audits };
      }
      if (allow.length > 0) {
        const allowed = firstMatch(allow, a);
        if (allowed) {
          return { decision: 'allow', ...allowed, action: 'ALLOW', reason: `allowed by AuthorizationPolicy "${allowed.policy}" rule ${allowed.rule} (ALLOW)`, audits };
        }
        return {
          decision: 'deny', action: 'NO_ALLOW_MATCH', audits,
          reason: `denied: no rule of the ALLOW policies of ${service} (${allow.map((p) => `"${p.name}"`).join(', ')}) matches`,
        };
      }
      if (defaultAction === 'deny') {
        return { decision: 'deny', action: 'DEFAULT', audits, reason: 'denied by MeshConfig authorization.default: deny (no ALLOW policy allows it)' };
      }
      if (!a.sourceIdentity) {
        if (mtls === 'PERMISSIVE') {
          return { decision: 'allow', action: 'DEFAULT', audits, reason: 'allowed by MeshConfig authorization.default: allow (mtls PERMISSIVE: a plaintext caller without mesh identity too)' };
        }
        return { decision: 'deny', action: 'DEFAULT', audits, reason: 'denied: MeshConfig authorization.default allow admits mesh identities only (mtls STRICT), and the caller has none' };
      }
      return { decision: 'allow', action: 'DEFAULT', audits, reason: 'allowed by MeshConfig authorization.default: allow (any mesh identity)' };
    },
  };
}

type Rule = AuthorizationPolicy['spec']['rules'][number];

function compileRule(rule: Rule): Matcher {
  const parts: Matcher[] = [];
  if (rule.from && rule.from.length > 0) {
    const entries = rule.from.map((f): Matcher => {
      const services = f.services ? new Set(f.services) : undefined;
      const identities = f.identities ? new Set(f.identities) : undefined;
      return (a) => {
        if (!a.sourceIdentity) return false; // a plaintext caller (PERMISSIVE) has no source to match
        if (services && !(a.sourceService && services.has(a.sourceService))) return false;
        if (identities && !identities.has(a.sourceIdentity)) return false;
        return true;
      };
    });
    parts.push(any(entries));
  }
  if (rule.to && rule.to.length > 0) {
    const entries = rule.to.map((t): Matcher => {
      const methods = t.methods ? new Set(t.methods) : undefined;
      const paths = t.paths ? t.paths.map(compilePath) : undefined;
      const ports = t.ports ? new Set(t.ports) : undefined;
      return (a) => {
        if (methods && !methods.has(a.method)) return false;
        if (paths && !paths.some((p) => p(a.path))) return false;
        if (ports && !(a.port !== undefined && ports.has(a.port))) return false;
        return true;
      };
    });
    parts.push(any(entries));
  }
  for (const cond of rule.when ?? []) parts.push(compileCondition(cond.key, cond.values));
  if (parts.length === 0) return () => true;
  return (a) => parts.every((m) => m(a));
}

function any(list: Matcher[]): Matcher {
  return (a) => list.some((m) => m(a));
}

/** Exact, or a prefix ending in `*`; `/x/*` also matches `/x`. */
export function compilePath(pattern: string): (path: string) => boolean {
  if (!pattern.endsWith('*')) return (p) => p === pattern;
  const prefix = pattern.slice(0, -1);
  const bare = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : undefined;
  return (p) => p.startsWith(prefix) || (bare !== undefined && p === bare);
}

const HEADER_KEY = /^request\.headers\[([A-Za-z0-9_-]+)\]$/;
const CLAIM_KEY = /^jwt\.claims\.(.+)$/;

function compileCondition(key: string, values: string[]): Matcher {
  const wanted = new Set(values);
  const header = HEADER_KEY.exec(key);
  if (header) {
    const name = header[1]!.toLowerCase();
    return (a) => {
      const v = a.headers[name];
      if (v === undefined) return false;
      return Array.isArray(v) ? v.some((x) => wanted.has(x)) : wanted.has(v);
    };
  }
  const claim = CLAIM_KEY.exec(key);
  if (claim) {
    const name = claim[1]!;
    return (a) => {
      if (!a.jwtClaims) return false;
      return claimMatches(claimValue(a.jwtClaims, name), wanted);
    };
  }
  // The schema refuses any other key; a key we cannot read never matches.
  return () => false;
}

/** The claim NAME, or, when there is no such claim and NAME is dotted, the nested value a.b.c. */
export function claimValue(claims: Record<string, unknown>, name: string): unknown {
  if (Object.prototype.hasOwnProperty.call(claims, name)) return claims[name];
  if (!name.includes('.')) return undefined;
  let cur: unknown = claims;
  for (const part of name.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.prototype.hasOwnProperty.call(cur, part)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function claimMatches(value: unknown, wanted: Set<string>): boolean {
  if (Array.isArray(value)) return value.some((v) => scalarMatches(v, wanted));
  return scalarMatches(value, wanted);
}

function scalarMatches(v: unknown, wanted: Set<string>): boolean {
  if (typeof v === 'string') return wanted.has(v);
  if (typeof v === 'number' || typeof v === 'boolean') return wanted.has(String(v));
  return false;
}
