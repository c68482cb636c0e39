import { Command } from 'commander';
import { registerControlPlane } from './commands/control-plane.js';
import { registerProxy } from './commands/proxy.js';
import { registerToken } from './commands/token.js';
import { registerResourceCommands } from './commands/resources.js';
import { registerDemo } from './commands/demo.js';
import { registerCanI } from './commands/can-i.js';
import { registerPrometheusConfig } from './commands/prometheus-config.js';
import { registerRoute } from './commands/route.js';
import { registerStat } from './commands/stat.js';
import { registerTap } from './commands/tap.js';
import { registerProxyConfig } from './commands/proxy-config.js';
import { registerCheck } from './commands/check.js';

export function buildProgram(): Command {
  const program = new Command('trellis')
    .description('Trellis service mesh: control plane, sidecar proxy and operator CLI')
    .version('0.1.0')
    .showHelpAfterError();
  registerControlPlane(program);
  registerProxy(program);
  registerToken(program);
  registerResourceCommands(program);
  registerCanI(program);
  registerPrometheusConfig(program);
  registerRoute(program);
  registerCheck(program);
  registerStat(program);
  registerTap(program);
  registerProxyConfig(program);
  registerDemo(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
