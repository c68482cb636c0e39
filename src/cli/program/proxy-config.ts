/** `trellis proxy-config`: the definition; the action is ../commands/proxy-config.ts. */
import { Option, type Command } from 'commander';
import { parseOutputFormat } from '../output-format.js';
import { apiOption, lazyAction } from './common.js';

export function registerProxyConfig(program: Command): void {
  apiOption(program.command('proxy-config')
    .description('Per instance of SERVICE: connection, ACKed vs current config version, last NACK, certificate expiry')
    .argument('<service>', 'service name')
    .addOption(new Option('-o, --output <format>', 'table | yaml | json').default('table').argParser(parseOutputFormat)))
    .action(lazyAction(async () => (await import('../commands/proxy-config.js')).runProxyConfig));
}
