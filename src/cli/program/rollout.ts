/** `trellis rollout status|promote|abort`: the definitions; the actions are ../commands/rollout.ts. */
import type { Command } from 'commander';
import { apiOption, lazyAction, outputOption } from './common.js';

const load = () => import('../commands/rollout.js');

export function registerRollout(program: Command): void {
  const rollout = program.command('rollout')
    .description('Canary rollouts: the mesh shifts a service\'s traffic to the canary step by step and rolls back by itself when analysis fails');
  outputOption(apiOption(rollout.command('status')
    .description('Phase (Pending, Progressing, Succeeded, RolledBack, Aborted), step, canary weight, last analysis and history of SERVICE\'s Rollout (every Rollout without SERVICE)')
    .argument('[service]', 'the service the Rollout names')))
    .action(lazyAction(async () => (await load()).runRolloutStatus));
  outputOption(apiOption(rollout.command('promote')
    .description('Skip the remaining steps: the canary gets 100% now (Succeeded)')
    .argument('<service>', 'the service the Rollout names')))
    .action(lazyAction(async () => (await load()).runRolloutPromote));
  outputOption(apiOption(rollout.command('abort')
    .description('Stop the rollout: the canary gets 0% (Aborted) until the Rollout changes or is deleted')
    .argument('<service>', 'the service the Rollout names')))
    .action(lazyAction(async () => (await load()).runRolloutAbort));
}
