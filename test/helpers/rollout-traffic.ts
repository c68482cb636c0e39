/**
 * Traffic for canary-rollout tests: bounded request batches through a caller's sidecar until a Rollout reaches
 * a phase, and a check of the split a proxy holds.
 */
import http from 'node:http';
import { client, type ControlPlaneRef } from './mesh.js';
import type { RolloutStatus } from '../../src/sdk/client.js';

/** `count` GETs through `address` (keep-alive, 4 at a time): which app answered, and the statuses. */
export async function send(address: string, count: number): Promise<{ apps: Record<string, number>; statuses: Record<number, number> }> {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const apps: Record<string, number> = {};
  const statuses: Record<number, number> = {};
  let next = 0;
  const one = () => new Promise<void>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/items', agent }, (res) => {
      res.resume();
      res.on('end', () => {
        statuses[res.statusCode ?? 0] = (statuses[res.statusCode ?? 0] ?? 0) + 1;
        const app = String(res.headers['x-app'] ?? 'none');
        apps[app] = (apps[app] ?? 0) + 1;
        resolve();
      });
    });
    req.on('error', () => { statuses[0] = (statuses[0] ?? 0) + 1; resolve(); });
    req.end();
  });
  await Promise.all(Array.from({ length: 4 }, async () => { while (next++ < count) await one(); }));
  agent.destroy();
  return { apps, statuses };
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

