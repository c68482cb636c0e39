/** `trellis token create`: the definition; the action is ../commands/token.ts. */
import type { Command } from 'commander';
import { apiOption, lazyAction } from './common.js';

export function registerToken(program: Command): void {
  const token = program.command('token').description('Join tokens for proxies');
  apiOption(token.command('create')
    .description('Create a join token: the right to obtain a certificate for one service, plus the control plane address and CA pin')
    .requiredOption('--service <name>', 'the service the token admits')
    .option('--ttl <duration>', 'validity', '24h'))
    .action(lazyAction(async () => (await import('../commands/token.js')).runTokenCreate));
}
