/** `apply`, `get`, `delete`, `describe service`: the definitions; the actions are ../commands/resources.ts. */
import type { Command } from 'commander';
import { collect } from '../options.js';
import { apiOption, lazyAction, outputOption } from './common.js';

const load = () => import('../commands/resources.js');

export function registerResourceCommands(program: Command): void {
  outputOption(apiOption(program.command('apply')
    .description('Validate and apply resources (YAML or JSON, one or many documents); all or nothing')
    .requiredOption('-f, --filename <path>', 'FILE, DIR (every .yaml/.yml/.json) or - for stdin; repeatable', collect)
    .option('--dry-run', 'validate and show what would change, change nothing')), 'table')
    .action(lazyAction(async () => (await load()).runApply));

  outputOption(apiOption(program.command('get')
    .description('List resources of a KIND, or show one (kinds are case-insensitive; plurals accepted)')
    .argument('<kind>', 'e.g. services, httproutes, trafficpolicy, meshconfig')
    .argument('[name]', 'one resource')))
    .action(lazyAction(async () => (await load()).runGet));

  apiOption(program.command('delete')
    .description('Delete a resource')
    .argument('<kind>')
    .argument('<name>'))
    .action(lazyAction(async () => (await load()).runDelete));

  const describe = program.command('describe').description('Show a resource in detail with what relates to it');
  outputOption(apiOption(describe.command('service')
    .description('A service: its spec, instances (address, labels, connection, ACKed version) and the routes and policies naming it')
    .argument('<name>')))
    .action(lazyAction(async () => (await load()).runDescribeService));
}
