/** `trellis token create --service NAME [--ttl 24h]`: prints one join token. */
import type { Command } from 'commander';
import { apiOption, clientFor, handleApiError, type ClientCliOptions } from './resources.js';

export function registerToken(program: Command): void {
  const token = program.command('token').description('Join tokens for proxies');
  apiOption(token.command('create')
    .description('Create a join token: the right to obtain a certificate for one service, plus the control plane address and CA pin')
    .requiredOption('--service <name>', 'the service the token admits')
    .option('--ttl <duration>', 'validity', '24h'))
    .action(async (opts: ClientCliOptions & { service: string; ttl: string }) => {
      try {
        const { token: value } = await clientFor(opts).createToken(opts.service, opts.ttl);
        process.stdout.write(value + '\n');
      } catch (err) {
        handleApiError(err);
      }
    });
}
