/**
 * A refused request as the proxy reports it to the control plane (api/schema/tap.ts DenialEvent; the stats
 * aggregator adds the instance and the time): authorization's 403s and JWT authentication's 401s.
 */
import type { DenialEvent } from '../../api/schema/tap.js';
import type { MeshRequest } from '../pipeline/types.js';

/** A denial as reported to the control plane (api/schema/tap.ts DenialEvent, without instance and time). */
export function denialOf(req: MeshRequest, service: string, reason: string, policy?: string, rule?: number): Omit<DenialEvent, 'instance' | 'at'> {
  return {
    source: (req.source.service ?? req.source.identity ?? 'unknown').slice(0, 253),
    destination: service || req.destination,
    method: req.method.slice(0, 32),
    path: req.path.slice(0, 2048),
    ...(policy !== undefined ? { policy } : {}),
    ...(rule !== undefined ? { rule } : {}),
    reason: reason.slice(0, 512),
  };
}
