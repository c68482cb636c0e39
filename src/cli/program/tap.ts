/** `trellis tap`: the definition; the action is ../commands/tap.ts. */
import { Option, type Command } from 'commander';
import { apiOption, lazyAction } from './common.js';

export type TapOutput = 'table' | 'json';

export function parseTapOutput(value: string): TapOutput {
  const v = value.toLowerCase();
  if (v === 'table' || v === 'wide') return 'table';
  if (v === 'json') return v;
  throw new Error(`unknown output format "${value}" for tap: use table or json`);
}

export function registerTap(program: Command): void {
  apiOption(program.command('tap')
    .description('Live requests of every instance of SERVICE (both directions), one line per request as it completes')
    .argument('<service>', 'the service whose proxies are tapped')
    .option('--path <prefix>', 'only requests whose path starts with this prefix, e.g. /api')
    .option('--method <method>', 'only requests with this HTTP method (case-insensitive)')
    .addOption(new Option('-o, --output <format>', 'table | json (one TapEvent per line, with request headers)').default('table').argParser(parseTapOutput)))
    .action(lazyAction(async () => (await import('../commands/tap.js')).runTap));
}
