import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { parseDuration } from '../../api/duration.js';
import { Protocol } from '../../api/schema/common.js';
import { startProxy } from '../../proxy/proxy.js';
import { announceListening, announce } from '../../shared/log.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

export function parseLabels(items: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`invalid label "${item}": expected key=value`);
    labels[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return labels;
}

export function parseOutbound(items: string[]): Array<{ service: string; address: string }> {
  return items.map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`invalid --outbound "${item}": expected NAME=HOST:PORT`);
    return { service: item.slice(0, eq), address: item.slice(eq + 1) };
  });
}

export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description('run the sidecar proxy beside one service instance')
    .requiredOption('--service <name>', 'the service this instance belongs to')
    .requiredOption('--app <host:port>', 'where the local application listens')
    .requiredOption('--inbound <host:port>', 'mTLS listener other proxies reach this instance on')
    .requiredOption('--token-file <file>', 'join token from `trellis token create`')
    .addOption(new Option('--protocol <protocol>', 'the application protocol').choices(Protocol.options).default('http'))
    .option('--labels <k=v,...>', 'instance labels, e.g. version=v2', collect, [])
    .option('--outbound <name=host:port>', 'local listener for service NAME (repeatable)', collect, [])
    .option('--http-proxy <host:port>', 'one HTTP proxy listener for all services (use with HTTP_PROXY)')
    .option('--admin <host:port>', 'admin listener, loopback only: /ready /metrics /config /drain', '127.0.0.1:0')
    .option('--control-plane <host:port>', 'override the control plane xDS address carried by the token')
    .option('--drain-timeout <duration>', 'how long SIGTERM waits for in-flight requests', '15s')
    .option('--header-timeout <duration>', 'HTTP/1.1: the request head must arrive within this (408 + close)', '20s')
    .option('--request-timeout <duration>', 'HTTP/1.1: the whole request, body included, must arrive within this (408 + close)', '300s')
    .action(async (o) => {
      const token = readFileSync(o.tokenFile, 'utf8').trim();
      // Signals before the proxy is up end it at once; after, they drain it.
      let shutdown: (() => Promise<void>) | undefined;
      const onSignal = () => { if (shutdown) void shutdown(); else process.exit(0); };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      const proxy = await startProxy({
        service: o.service,
        app: o.app,
        inbound: o.inbound,
        token,
        protocol: o.protocol,
        labels: parseLabels(o.labels),
        outbound: parseOutbound(o.outbound),
        httpProxy: o.httpProxy,
        admin: o.admin,
        controlPlane: o.controlPlane,
        drainTimeoutMs: parseDuration(o.drainTimeout),
        headerTimeoutMs: parseDuration(o.headerTimeout),
        requestTimeoutMs: parseDuration(o.requestTimeout),
        onListening: announceListening,
      });
      shutdown = proxy.shutdown;
      announce('ready', { service: o.service });
      await proxy.closed;
      process.exit(0);
    });
}
