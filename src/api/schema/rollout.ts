/**
 * The status of a Rollout (SPEC §3) as the control plane's rollout controller keeps it
 * (src/control-plane/core/rollouts.ts): persisted in the store, served by GET /api/v1/rollouts[/SERVICE],
 * printed by `trellis rollout status`. Pure module (zod only): the SDK and the dashboard may import it.
 *
 * Phases:
 *   Pending      no traffic is split yet: no ready instance matches the stable or the canary labels
 *   Progressing  the canary gets `canaryWeight`% (steps[step]); analysis every `interval`
 *   Succeeded    every step passed (or `promote`): the canary keeps 100% until the Rollout changes or is deleted
 *   RolledBack   analysis failed (or no canary instance, or too many intervals without enough requests): canary 0%
 *   Aborted      `abort`: canary 0%
 */
import { z } from 'zod';

export const RolloutPhase = z.enum(['Pending', 'Progressing', 'Succeeded', 'RolledBack', 'Aborted']);
export type RolloutPhase = z.infer<typeof RolloutPhase>;

/** One analysis of the canary over the interval that just ended. */
export const RolloutAnalysis = z.object({
  /** When it ran (ISO, control-plane clock). */
  at: z.string(),
  /** The window the canary's metrics were summed over (ms): the interval. */
  windowMs: z.number().int().nonnegative(),
  /** Requests the canary instances' own proxies (inbound) reported in the window. */
  requests: z.number().int().nonnegative(),
  /** successes / requests (0..1); absent without requests. */
  successRate: z.number().min(0).max(1).optional(),
  /** p99 latency in ms (interpolated in the histogram bucket); absent without requests. */
  p99Ms: z.number().nonnegative().optional(),
  /** passed: next step; failed: rolled back; held: fewer requests than minRequests, the step is held. */
  result: z.enum(['passed', 'failed', 'held']),
  reason: z.string(),
});
export type RolloutAnalysis = z.infer<typeof RolloutAnalysis>;

export const RolloutEvent = z.object({
  at: z.string(),
  phase: RolloutPhase,
  step: z.number().int().nonnegative(),
  canaryWeight: z.number().int().min(0).max(100),
  reason: z.string(),
});
export type RolloutEvent = z.infer<typeof RolloutEvent>;

/** Most events kept in a status's history (oldest dropped first). */
export const ROLLOUT_HISTORY_MAX = 20;

export const RolloutStatus = z.object({
  /** The Rollout resource's name. */
  name: z.string(),
  service: z.string(),
  stable: z.record(z.string(), z.string()),
  canary: z.record(z.string(), z.string()),
  steps: z.array(z.number().int()),
  interval: z.string(),
  phase: RolloutPhase,
  /** Index into steps of the current (or last) step. */
  step: z.number().int().nonnegative(),
  /** Percent of the service's split traffic sent to the canary labels (stable gets the rest). */
  canaryWeight: z.number().int().min(0).max(100),
  /** Whether the mesh's routes carry the split now (false while Pending). */
  trafficSplit: z.boolean(),
  message: z.string(),
  /** Set when no route carries the split: every HTTPRoute to the service names subsets explicitly. */
  warning: z.string().optional(),
  /** Consecutive analyses held for lack of requests (reset by a decision). */
  holds: z.number().int().nonnegative(),
  startedAt: z.string(),
  updatedAt: z.string(),
  /** When the next analysis runs (Progressing only). */
  nextAnalysisAt: z.string().optional(),
  lastAnalysis: RolloutAnalysis.optional(),
  /** Phase and step changes, oldest first (at most ROLLOUT_HISTORY_MAX). */
  history: z.array(RolloutEvent),
});
export type RolloutStatus = z.infer<typeof RolloutStatus>;

export const RolloutList = z.object({ rollouts: z.array(RolloutStatus) });
export type RolloutList = z.infer<typeof RolloutList>;
