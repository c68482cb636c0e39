/** `trellis route explain`: the definition; the explanation and the action are ../commands/route.ts. */
import { Option, type Command } from 'commander';
import { collect } from '../options.js';
import { parseOutputFormat } from '../output-format.js';
import { apiOption, lazyAction } from './common.js';

export function registerRoute(program: Command): void {
  const route = program.command('route').description('Inspect how requests are routed');
  apiOption(route.command('explain')
    .description('Explain how the proxy of --from would route METHOD PATH to --to: route and rule, backends and weights, filters, timeouts, retries and policies (nothing is sent)')
    .requiredOption('--from <service>', 'the calling service')
    .requiredOption('--to <service>', 'the destination service')
    .argument('<method>', 'HTTP method, e.g. GET')
    .argument('<path>', 'request path with optional query, e.g. /api/items?variant=b')
    .option('--header <k=v>', 'a request header; repeatable', collect, [])
    .addOption(new Option('-o, --output <format>', 'table | yaml | json').default('table').argParser(parseOutputFormat)))
    .action(lazyAction(async () => (await import('../commands/route.js')).runRouteExplain));
}
