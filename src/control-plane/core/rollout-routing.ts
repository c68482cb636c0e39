/**
 * How a Rollout's current weight reaches the proxies: the compiler (core/compiler.ts) passes the HTTPRoutes
 * of every version through `applyRolloutSplits`, so a weight change is an ordinary new config version.
 *
 * The rule (like Flagger, the Rollout owns the split of its service's unqualified traffic):
 * - every backendRef naming the Rollout's service WITHOUT a subset, in any HTTPRoute, becomes two:
 *   `{subset: stable, weight: W × (100 − w)}` and `{subset: canary, weight: W × w}` (W its weight, w the
 *   canary percent), so the rule's other backends keep their share and the service's share is split w%;
 * - a rule of an HTTPRoute attached to the service (parentRefs) with no backendRefs (it sends to the
 *   service itself) gets those two backendRefs;
 * - when no HTTPRoute is attached to the service, one route is added for it (`rollout-<name>`, one rule
 *   matching everything) carrying the split, in place of the proxies' implicit default route;
 * - backendRefs that already name a subset, mirrors (RequestMirror) and TCPRoutes are left alone: an
 *   explicit subset is the user's own decision.
 * A backend with weight 0 is skipped by the proxy's picker, so 0% and 100% send nothing to the other side.
 */
import type { BackendRef, HTTPRouteRule, ResourceOf } from '../../api/schema/resources.js';
import { API_VERSION } from '../../api/schema/common.js';
import { byName } from '../../api/resource-order.js';

/** What the compiler needs of one Rollout whose split is in force. */
export interface RolloutRouting {
  /** The Rollout resource's name. */
  rollout: string;
  service: string;
  stable: Readonly<Record<string, string>>;
  canary: Readonly<Record<string, string>>;
  /** 0..100: the canary's percent of the service's traffic. */
  canaryWeight: number;
}

type HTTPRoute = ResourceOf<'HTTPRoute'>;

/** Longest resource name (common.ts Name). */
const MAX_NAME = 63;

function split(ref: BackendRef, r: RolloutRouting): BackendRef[] {
  const w = Math.min(100, Math.max(0, Math.round(r.canaryWeight)));
  return [
    { name: ref.name, subset: { ...r.stable }, weight: ref.weight * (100 - w) },
    { name: ref.name, subset: { ...r.canary }, weight: ref.weight * w },
  ];
}

/** Largest backendRef weight (resources.ts BackendRef). */
const MAX_WEIGHT = 1_000_000;

/** Scales a rule's weights down when a split pushed one above the schema's bound (a positive weight stays ≥ 1). */
function withinWeightBound(refs: BackendRef[]): BackendRef[] {
  const max = Math.max(...refs.map((r) => r.weight));
  if (max <= MAX_WEIGHT) return refs;
  const f = max / MAX_WEIGHT;
  return refs.map((r) => ({ ...r, weight: r.weight === 0 ? 0 : Math.max(1, Math.floor(r.weight / f)) }));
}

/** The name of the route added for a service without HTTPRoutes: `rollout-<name>`, unique among `taken`. */
export function syntheticRouteName(rollout: string, taken: ReadonlySet<string>): string {
  const base = `rollout-${rollout}`.slice(0, MAX_NAME).replace(/-+$/, '');
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) {
    const suffix = `-${i}`;
    const name = base.slice(0, MAX_NAME - suffix.length).replace(/-+$/, '') + suffix;
    if (!taken.has(name)) return name;
  }
}

/**
 * Pure: the HTTPRoutes with every active Rollout's split applied (routes and rules that change are copied;
 * the others are the same objects). `routes` must be in name order (as the compiler keeps them); the result is too.
 */
export function applyRolloutSplits(routes: readonly HTTPRoute[], rollouts: readonly RolloutRouting[]): HTTPRoute[] {
  if (rollouts.length === 0) return [...routes];
  const byService = new Map<string, RolloutRouting>();
  for (const r of rollouts) if (!byService.has(r.service)) byService.set(r.service, r);

  const out = routes.map((route) => {
    let changed = false;
    const rules = route.spec.rules.map((rule): HTTPRouteRule => {
      const refs = rule.backendRefs ?? [];
      if (refs.length === 0) {
        // Sends to the parent service: a split when that parent has a Rollout (the first parent, as the proxy does per parent).
        const parents = route.spec.parentRefs.map((p) => p.name).filter((n) => byService.has(n));
        if (parents.length === 0) return rule;
        // A route attached to several services resolves an empty backendRefs to each caller's destination:
        // only a route with a single parent can name it explicitly.
        if (route.spec.parentRefs.length !== 1) return rule;
        changed = true;
        return { ...rule, backendRefs: split({ name: parents[0]!, weight: 1 }, byService.get(parents[0]!)!) };
      }
      let ruleChanged = false;
      const next: BackendRef[] = [];
      for (const ref of refs) {
        const r = !ref.subset ? byService.get(ref.name) : undefined;
        if (!r) { next.push(ref); continue; }
        ruleChanged = true;
        next.push(...split(ref, r));
      }
      if (!ruleChanged) return rule;
      changed = true;
      return { ...rule, backendRefs: withinWeightBound(next) };
    });
    return changed ? { ...route, spec: { ...route.spec, rules } } : route;
  });

  const attached = new Set<string>();
  for (const route of routes) for (const p of route.spec.parentRefs) attached.add(p.name);
  const taken = new Set(routes.map((r) => r.metadata.name));
  for (const r of byService.values()) {
    if (attached.has(r.service)) continue;
    const name = syntheticRouteName(r.rollout, taken);
    taken.add(name);
    out.push({
      apiVersion: API_VERSION, kind: 'HTTPRoute', metadata: { name, labels: { 'trellis.dev/rollout': r.rollout } },
      spec: { parentRefs: [{ name: r.service }], rules: [{ backendRefs: split({ name: r.service, weight: 1 }, r) }] },
    });
  }
  return out.sort(byName);
}

/**
 * Pure: whether a Rollout of `service` would shift any traffic given these HTTPRoutes (applyRolloutSplits'
 * rule): true when no route is attached to the service, or a backendRef names it without a subset, or a
 * single-parent route attached to it has a rule without backendRefs. False means every route to the
 * service names subsets explicitly: the split has nothing to act on.
 */
export function splitApplies(routes: readonly HTTPRoute[], service: string): boolean {
  let attached = false;
  for (const route of routes) {
    const parents = route.spec.parentRefs.map((p) => p.name);
    if (parents.includes(service)) attached = true;
    for (const rule of route.spec.rules) {
      const refs = rule.backendRefs ?? [];
      if (refs.length === 0 && parents.length === 1 && parents[0] === service) return true;
      if (refs.some((r) => r.name === service && !r.subset)) return true;
    }
  }
  return !attached;
}
