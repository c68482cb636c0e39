/** `trellis stat` and `trellis top`: the definitions; the actions are ../commands/stat.ts. */
import { Option, type Command } from 'commander';
import { parseOutputFormat } from '../output-format.js';
import { apiOption, lazyAction } from './common.js';

const load = () => import('../commands/stat.js');

export function registerStat(program: Command): void {
  apiOption(program.command('stat')
    .description('Golden metrics per service (or per route, or per edge): request rate, success rate, p50/p95/p99 latency')
    .argument('[service]', 'only this service (for --edges: as source or destination)')
    .option('--routes', 'one row per route of each service (callers\' view)')
    .option('--edges', 'one row per edge source → destination')
    .option('--window <duration>', 'time window, 1s to 15m', '1m')
    .addOption(new Option('-o, --output <format>', 'table | yaml | json').default('table').argParser(parseOutputFormat)))
    .action(lazyAction(async () => (await load()).runStat));

  apiOption(program.command('top')
    .description('The busiest (service, route) rows, refreshed in place')
    .option('--window <duration>', 'time window, 1s to 15m', '10s')
    .option('--interval <duration>', 'refresh interval', '2s')
    .option('--limit <n>', 'rows shown', '20')
    .option('--once', 'print once and exit'))
    .action(lazyAction(async () => (await load()).runTop));
}
