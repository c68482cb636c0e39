/** `trellis check`: the definition; the checks and the action are ../commands/check.ts. */
import { Option, type Command } from 'commander';
import { parseOutputFormat } from '../output-format.js';
import { apiOption, lazyAction } from './common.js';

export function registerCheck(program: Command): void {
  apiOption(program.command('check')
    .description('Diagnose the mesh: control plane, CA expiry, proxy connections, config ACK/NACK, certificates, clock skew (exit 1 on any failure)')
    .addOption(new Option('-o, --output <format>', 'table | yaml | json').default('table').argParser(parseOutputFormat)))
    .action(lazyAction(async () => (await import('../commands/check.js')).runCheck));
}
