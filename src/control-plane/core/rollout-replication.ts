/**
 * What a store change means for the rollouts of a control plane (main.ts wires it; the unit tests too):
 * Rollout/HTTPRoute changes make the leader reconcile, a status-blob change makes a follower reload it, and the
 * session values carry forwarded promote/abort (core/rollout-commands.ts) and shared canary stats
 * (core/shared-subset-stats.ts). `reset` (changes may have been missed) does all of the re-reading.
 */
import type { StoreChange } from './ports.js';
import { ROLLOUT_STATUS_BLOB } from './rollouts.js';

export interface RolloutReplicas {
  rollouts: { schedule(): void; statusChanged(): Promise<void> };
  commands: { onChange(change: StoreChange): void };
  stats: { onChange(change: StoreChange): void };
}

export function onRolloutStoreChange(change: StoreChange, r: RolloutReplicas): void {
  if ((change.type === 'resource' && (change.kind === 'Rollout' || change.kind === 'HTTPRoute')) || change.type === 'reset') r.rollouts.schedule();
  if ((change.type === 'blob' && change.key === ROLLOUT_STATUS_BLOB) || change.type === 'reset') void r.rollouts.statusChanged();
  r.commands.onChange(change);
  r.stats.onChange(change);
}
