/**
 * Gateway API RequestHeaderModifier / ResponseHeaderModifier: `set` replaces, `add` appends (an
 * extra value of the same header), `remove` deletes; names are case-insensitive. Removals run first,
 * then sets, then adds. Everything is validated once per config version: a modifier that touches a
 * mesh header (x-trellis-*), a pseudo-header, a framing/hop-by-hop header, or names one header twice
 * is refused at build, so the proxy NACKs the version with the reason.
 */
import type { HTTPRouteRule } from '../../api/schema/resources.js';
import type { RuleFilterFactory } from '../pipeline/factory.js';
import type { HeaderMap, HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';

export interface HeaderModifierSpec {
  set?: ReadonlyArray<{ name: string; value: string }>;
  add?: ReadonlyArray<{ name: string; value: string }>;
  remove?: readonly string[];
}

/** A compiled modifier: lower-cased names, validated. */
export interface CompiledHeaderModifier {
  readonly remove: readonly string[];
  readonly set: ReadonlyArray<readonly [string, string]>;
  readonly add: ReadonlyArray<readonly [string, string]>;
}

const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const RESERVED = new Set([
  'host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer',
  'content-length', 'x-forwarded-client-cert',
]);

/** Validates and lower-cases a modifier; throws with a clear reason (→ NACK). */
export function compileHeaderModifier(spec: HeaderModifierSpec, where: string): CompiledHeaderModifier {
  const seen = new Set<string>();
  const check = (raw: string, op: string): string => {
    const name = raw.toLowerCase();
    if (!TOKEN_RE.test(raw)) throw new Error(`${where}: ${op} "${raw}" is not a valid header name`);
    if (name.startsWith('x-trellis-')) throw new Error(`${where}: ${op} "${raw}": x-trellis-* headers are reserved for the mesh`);
    if (RESERVED.has(name)) throw new Error(`${where}: ${op} "${raw}": hop-by-hop and framing headers cannot be modified`);
    if (seen.has(name)) throw new Error(`${where}: header "${raw}" appears more than once (names are case-insensitive)`);
    seen.add(name);
    return name;
  };
  const value = (name: string, v: string): string => {
    if (/[\r\n\0]/.test(v)) throw new Error(`${where}: the value of "${name}" contains CR, LF or NUL`);
    return v;
  };
  return {
    remove: (spec.remove ?? []).map((n) => check(n, 'remove')),
    set: (spec.set ?? []).map((h) => [check(h.name, 'set'), value(h.name, h.value)] as const),
    add: (spec.add ?? []).map((h) => [check(h.name, 'add'), value(h.name, h.value)] as const),
  };
}

/** Applies a compiled modifier to a header map in place. */
export function applyHeaderModifier(m: CompiledHeaderModifier, headers: HeaderMap): void {
  for (const name of m.remove) delete headers[name];
  for (const [name, value] of m.set) headers[name] = value;
  for (const [name, value] of m.add) {
    const existing = headers[name];
    if (existing === undefined) headers[name] = value;
    else headers[name] = Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
}

class RequestHeaderModifier implements HttpFilter {
  readonly name = 'request-header-modifier';
  constructor(private readonly m: CompiledHeaderModifier) {}
  handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    applyHeaderModifier(this.m, req.headers);
    return next(req);
  }
}

class ResponseHeaderModifier implements HttpFilter {
  readonly name = 'response-header-modifier';
  constructor(private readonly m: CompiledHeaderModifier) {}
  async handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    const res = await next(req);
    applyHeaderModifier(this.m, res.headers);
    return res;
  }
}

function onlyOne<T>(rule: HTTPRouteRule, type: string, routeName: string, pick: (f: NonNullable<HTTPRouteRule['filters']>[number]) => T | undefined): T | undefined {
  const found = (rule.filters ?? []).map(pick).filter((x): x is T => x !== undefined);
  if (found.length > 1) throw new Error(`HTTPRoute ${routeName}: a rule may have at most one ${type} filter`);
  return found[0];
}

export const requestHeaderModifierFactory: RuleFilterFactory = {
  name: 'request-header-modifier',
  build(_ctx, rule, routeName) {
    const spec = onlyOne(rule, 'RequestHeaderModifier', routeName, (f) => (f.type === 'RequestHeaderModifier' ? f.requestHeaderModifier : undefined));
    if (!spec) return null;
    const m = compileHeaderModifier(spec, `HTTPRoute ${routeName}: RequestHeaderModifier`);
    if (m.remove.length + m.set.length + m.add.length === 0) return null;
    return new RequestHeaderModifier(m);
  },
};

export const responseHeaderModifierFactory: RuleFilterFactory = {
  name: 'response-header-modifier',
  build(_ctx, rule, routeName) {
    const spec = onlyOne(rule, 'ResponseHeaderModifier', routeName, (f) => (f.type === 'ResponseHeaderModifier' ? f.responseHeaderModifier : undefined));
    if (!spec) return null;
    const m = compileHeaderModifier(spec, `HTTPRoute ${routeName}: ResponseHeaderModifier`);
    if (m.remove.length + m.set.length + m.add.length === 0) return null;
    return new ResponseHeaderModifier(m);
  },
};
