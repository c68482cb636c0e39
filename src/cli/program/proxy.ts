/** `trellis proxy`: the definition; the process itself is ../commands/proxy.ts. */
import { Option, type Command } from 'commander';
import { Protocol } from '../../api/schema/common.js';
import { lazyAction } from './common.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description('run the sidecar proxy beside one service instance')
    .requiredOption('--service <name>', 'the service this instance belongs to')
    .requiredOption('--app <host:port>', 'where the local application listens')
    .requiredOption('--inbound <host:port>', 'mTLS listener other proxies reach this instance on (also plaintext under MeshConfig mtls PERMISSIVE)')
    .requiredOption('--token-file <file>', 'join token from `trellis token create`')
    .addOption(new Option('--protocol <protocol>', 'the application protocol').choices(Protocol.options).default('http'))
    .option('--labels <k=v,...>', 'instance labels, e.g. version=v2', collect, [])
    .option('--outbound <name=host:port>', 'local listener for service NAME (repeatable)', collect, [])
    .option('--http-proxy <host:port>', 'one HTTP proxy listener for all services (use with HTTP_PROXY)')
    .option('--admin <host:port>', 'admin listener, loopback only: /ready /metrics /config /drain', '127.0.0.1:0')
    .option('--control-plane <host:port,...>', 'override the control plane xDS address(es) carried by the token; several (comma-separated) are tried in turn')
    .option('--drain-timeout <duration>', 'how long SIGTERM waits for in-flight requests', '15s')
    .option('--header-timeout <duration>', 'HTTP/1.1: the request head must arrive within this (408 + close)', '20s')
    .option('--request-timeout <duration>', 'HTTP/1.1: the whole request, body included, must arrive within this (408 + close)', '300s')
    .action(lazyAction(async () => (await import('../commands/proxy.js')).runProxy));
}
