/**
 * Compiles the HTTPRoutes attached to one service into an ordered match table, once per config
 * version. Precedence follows Gateway API: Exact path, then the longest PathPrefix, then regex;
 * then a method match; then more header matches; then more query matches; then route name; then rule order.
 * A service without HTTPRoutes gets one default rule that sends everything to the service itself.
 */
import type { HTTPRouteMatch, HTTPRouteRule, ResourceOf } from '../../api/schema/resources.js';
import type { MeshRequest } from '../pipeline/types.js';
import { headerValue } from '../http/headers.js';
import { byName } from '../../api/resource-order.js';

export interface CompiledRule {
  /** "<route>/<rule index>" (or "default"): a bounded-cardinality label for metrics. */
  readonly name: string;
  readonly routeName: string;
  readonly rule: HTTPRouteRule;
}

type Matcher = (req: MeshRequest, path: string, query: URLSearchParams | undefined) => boolean;

interface Entry { matcher: Matcher; rule: CompiledRule; rank: number[] }

export interface RouteTable {
  readonly rules: readonly CompiledRule[];
  /** The first matching rule, or undefined (→ NO_ROUTE). */
  match(req: MeshRequest): CompiledRule | undefined;
}

const DEFAULT_RULE: HTTPRouteRule = {};

export function compileRouteTable(service: string, routes: readonly ResourceOf<'HTTPRoute'>[]): RouteTable {
  const attached = routes
    .filter((r) => r.spec.parentRefs.some((p) => p.name === service))
    .sort(byName);
  if (attached.length === 0) {
    const rule: CompiledRule = { name: 'default', routeName: 'default', rule: DEFAULT_RULE };
    return { rules: [rule], match: () => rule };
  }
  const entries: Entry[] = [];
  const rules: CompiledRule[] = [];
  attached.forEach((route, routeIndex) => {
    route.spec.rules.forEach((rule, ruleIndex) => {
      const compiled: CompiledRule = { name: `${route.metadata.name}/${ruleIndex}`, routeName: route.metadata.name, rule };
      rules.push(compiled);
      const matches = rule.matches && rule.matches.length > 0 ? rule.matches : [{ path: { type: 'PathPrefix' as const, value: '/' } }];
      for (const m of matches) entries.push({ matcher: compileMatch(m), rule: compiled, rank: rankOf(m, routeIndex, ruleIndex) });
    });
  });
  entries.sort((a, b) => compareRank(a.rank, b.rank));
  const needsQuery = attached.some((r) => r.spec.rules.some((rule) => rule.matches?.some((m) => m.queryParams?.length)));
  return {
    rules,
    match(req) {
      const q = req.path.indexOf('?');
      const path = q === -1 ? req.path : req.path.slice(0, q);
      const query = needsQuery && q !== -1 ? new URLSearchParams(req.path.slice(q + 1)) : undefined;
      for (const entry of entries) if (entry.matcher(req, path, query)) return entry.rule;
      return undefined;
    },
  };
}

function rankOf(m: HTTPRouteMatch, routeIndex: number, ruleIndex: number): number[] {
  const type = m.path?.type ?? 'PathPrefix';
  const value = m.path?.value ?? '/';
  const typeRank = type === 'Exact' ? 0 : type === 'PathPrefix' ? 1 : 2;
  return [
    typeRank,
    type === 'PathPrefix' ? -value.length : 0,
    m.method ? 0 : 1,
    -(m.headers?.length ?? 0),
    -(m.queryParams?.length ?? 0),
    routeIndex,
    ruleIndex,
  ];
}

function compareRank(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function compileMatch(m: HTTPRouteMatch): Matcher {
  const checks: Matcher[] = [];
  if (m.path) {
    const { type, value } = m.path;
    if (type === 'Exact') checks.push((_r, p) => p === value);
    else if (type === 'PathPrefix') {
      const prefix = value.endsWith('/') && value.length > 1 ? value.slice(0, -1) : value;
      if (prefix !== '/') checks.push((_r, p) => p === prefix || (p.startsWith(prefix) && p.charCodeAt(prefix.length) === 47));
    } else {
      const re = new RegExp(`^(?:${value})$`, 'u');
      checks.push((_r, p) => re.test(p));
    }
  }
  if (m.method) {
    const method = m.method;
    checks.push((r) => r.method === method);
  }
  for (const h of m.headers ?? []) {
    const name = h.name.toLowerCase();
    if (h.type === 'RegularExpression') {
      const re = new RegExp(`^(?:${h.value})$`, 'u');
      checks.push((r) => { const v = headerValue(r.headers, name); return v !== undefined && re.test(v); });
    } else {
      const value = h.value;
      checks.push((r) => headerValue(r.headers, name) === value);
    }
  }
  for (const qp of m.queryParams ?? []) {
    const name = qp.name;
    if (qp.type === 'RegularExpression') {
      const re = new RegExp(`^(?:${qp.value})$`, 'u');
      checks.push((_r, _p, q) => { const v = q?.get(name); return v != null && re.test(v); });
    } else {
      const value = qp.value;
      checks.push((_r, _p, q) => q?.get(name) === value);
    }
  }
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0]!;
  return (r, p, q) => {
    for (const c of checks) if (!c(r, p, q)) return false;
    return true;
  };
}
