/**
 * Traffic for canary-rollout tests: bounded request batches through a caller's sidecar until a Rollout reaches
 * a phase, and a check of the split a proxy holds.
 */
import { tallyAnswers, type AnswerTally } from './apps.js';
import { client, type ControlPlaneRef } from './mesh.js';
import type { RolloutStatus } from '../../src/sdk/client.js';

/** `count` GETs of /items through `address` (keep-alive, 4 at a time): which app answered, and the statuses. */
export function send(address: string, count: number): Promise<AnswerTally> {
  return tallyAnswers(address, count, { path: '/items', concurrency: 4 });
}

/**
 * Sends traffic in batches until the Rollout of `service` reaches one of `phases` (bounded: 90 s and
 * 20,000 requests); returns the final status and which apps answered along the way.
 */
export async function driveUntil(cp: ControlPlaneRef, address: string, service: string, phases: RolloutStatus['phase'][]) {
  const deadline = Date.now() + 90_000;
  const seen: Record<string, number> = {};
  let sent = 0;
  for (;;) {
    const status = await client(cp).rolloutStatus(service);
    if (phases.includes(status.phase)) return { status, seen };
    if (Date.now() > deadline || sent >= 20_000) {
      throw new Error(`Rollout of ${service} still ${status.phase} after ${sent} requests: ${JSON.stringify(status)}`);
    }
    const batch = await send(address, 40);
    sent += 40;
    for (const [app, n] of Object.entries(batch.apps)) seen[app] = (seen[app] ?? 0) + n;
  }
}

/** The caller's proxy holds a route for `service` whose canary (version=v2) weight share is `canaryPercent`. */
export function hasSplit(service: string, canaryPercent: number) {
  return (s: { httpRoutes: Array<{ spec: { parentRefs: Array<{ name: string }>; rules: Array<{ backendRefs?: Array<{ subset?: Record<string, string>; weight: number }> }> } }> }) =>
    s.httpRoutes.some((r) => r.spec.parentRefs.some((p) => p.name === service) && r.spec.rules.some((rule) => {
      const refs = rule.backendRefs ?? [];
      const total = refs.reduce((a, b) => a + b.weight, 0);
      const canary = refs.filter((b) => b.subset?.version === 'v2').reduce((a, b) => a + b.weight, 0);
      return total > 0 && refs.some((b) => b.subset?.version === 'v1') && Math.round((canary / total) * 100) === canaryPercent;
    }));
}

