/** `trellis can-i`: the definition; the decision and the action are ../commands/can-i.ts. */
import { Option, type Command } from 'commander';
import { collect } from '../options.js';
import { parseOutputFormat } from '../output-format.js';
import { apiOption, lazyAction } from './common.js';

export function registerCanI(program: Command): void {
  apiOption(program.command('can-i')
    .description('Would SERVICE --to let SERVICE --from in for METHOD PATH? Prints allowed or denied, and the deciding policy and rule')
    .option('--from <service>', 'the calling service (required, unless --plaintext)')
    .option('--plaintext', 'the caller has no mesh identity: a plaintext client on the inbound port (admitted only under MeshConfig mtls PERMISSIVE)')
    .requiredOption('--to <service>', 'the destination service')
    .argument('<method>', 'HTTP method, e.g. GET')
    .argument('<path>', 'request path, e.g. /admin/x (normalised like the proxy does)')
    .option('--header <k=v>', 'a request header; repeatable', collect, [])
    .option('--jwt <token>', 'a bearer token whose claims policies may use (its signature is not verified by can-i)')
    .option('--port <n>', 'destination port (default: the Service\'s declared port)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`--port ${v}: not a port`);
      return n;
    })
    .addOption(new Option('-o, --output <format>', 'table | yaml | json').default('table').argParser(parseOutputFormat)))
    .action(lazyAction(async () => (await import('../commands/can-i.js')).runCanI));
}
