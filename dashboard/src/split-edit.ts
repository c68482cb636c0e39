/**
 * Editing a route's split: the weights of each rule's backendRefs. A draft is the weights as typed; `withWeights`
 * makes the resource to send to POST /api/v1/apply (the same validation as `trellis apply`), `shares` the percentages.
 */
import type { Resource } from '../../src/sdk/client.js';

export type RouteResource = Extract<Resource, { kind: 'HTTPRoute' | 'TCPRoute' }>;
export interface Backend { name: string; subset?: Record<string, string>; weight: number }

/** Weights as typed (strings), per rule, per backend. */
export type Draft = string[][];

export function backendsOf(route: RouteResource): Backend[][] {
  return route.spec.rules.map((rule) => (rule.backendRefs ?? []).map((b) => ({ name: b.name, ...(b.subset ? { subset: b.subset } : {}), weight: b.weight })));
}

export function draftOf(route: RouteResource): Draft {
  return backendsOf(route).map((rule) => rule.map((b) => String(b.weight)));
}

export function sameDraft(a: Draft, b: Draft): boolean {
  return a.length === b.length && a.every((rule, i) => rule.length === b[i]!.length && rule.every((w, j) => w.trim() === b[i]![j]!.trim()));
}

/** A typed weight as sent: an integer when it is one, else the text (so the API names the field and the reason). */
export function parseWeight(text: string): number | string {
  const t = text.trim();
  return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t;
}

/** The route with the draft's weights; every other field as stored. */
export function withWeights(route: RouteResource, draft: Draft): RouteResource {
  const copy = structuredClone(route) as RouteResource;
  copy.spec.rules.forEach((rule, i) => {
    (rule.backendRefs ?? []).forEach((b, j) => {
      const typed = draft[i]?.[j];
      if (typed !== undefined) (b as { weight: number | string }).weight = parseWeight(typed);
    });
  });
  return copy;
}

/** Each backend's share of its rule, 0..1 (undefined when the weights are not valid numbers or sum to 0). */
export function shares(weights: (number | string)[]): (number | undefined)[] {
  const nums = weights.map((w) => (typeof w === 'number' ? w : parseWeight(w)));
  if (nums.some((n) => typeof n !== 'number' || !Number.isFinite(n) || n < 0)) return nums.map(() => undefined);
  const total = (nums as number[]).reduce((a, b) => a + b, 0);
  return (nums as number[]).map((n) => (total > 0 ? n / total : undefined));
}

export function backendLabel(b: Backend): string {
  const subset = b.subset ? Object.entries(b.subset).map(([k, v]) => `${k}=${v}`).join(',') : '';
  return subset ? `${b.name} ${subset}` : b.name;
}
