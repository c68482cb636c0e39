/**
 * The `trellis` program. Every command is defined in ./program/ (names, arguments, options, help) and
 * its action imports the command's module (./commands/) only when that command runs: `trellis proxy`
 * loads the proxy and nothing of the operator commands (YAML, the SDK, can-i's engine), and `--help`
 * loads no command module. control-plane and demo import their heavy modules in their action too.
 */
import { Command } from 'commander';
import { registerControlPlane } from './commands/control-plane.js';
import { registerDemo } from './commands/demo.js';
import { registerProxy } from './program/proxy.js';
import { registerToken } from './program/token.js';
import { registerResourceCommands } from './program/resources.js';
import { registerCanI } from './program/can-i.js';
import { registerPrometheusConfig } from './program/prometheus-config.js';
import { registerRoute } from './program/route.js';
import { registerStat } from './program/stat.js';
import { registerTap } from './program/tap.js';
import { registerProxyConfig } from './program/proxy-config.js';
import { registerCheck } from './program/check.js';
import { registerRollout } from './program/rollout.js';

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
  registerRollout(program);
  registerDemo(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
