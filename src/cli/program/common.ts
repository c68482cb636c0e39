/**
 * What every command definition shares. A definition (this directory) holds only the command's name,
 * arguments, options and help; its action imports the command's module (../commands/) when it runs,
 * so a process loads only the command it runs (`trellis proxy` never loads YAML, the SDK or the
 * control plane) and `--help` loads no command at all.
 */
import { Option, type Command } from 'commander';
import { parseOutputFormat, type OutputFormat } from '../output-format.js';

/**
 * An action whose implementation is imported on first use: `lazyAction(async () => (await import('../commands/x.js')).runX)`.
 * Commander passes the arguments, then the options and the command, as to any action.
 */
export function lazyAction<A extends unknown[]>(load: () => Promise<(...args: A) => unknown>): (...args: A) => Promise<void> {
  return async (...args: A) => { await (await load())(...args); };
}

/** Adds `--api URL` (default $TRELLIS_API or http://127.0.0.1:15000). */
export function apiOption(cmd: Command): Command {
  return cmd.option('--api <url>', 'control plane API URL (default $TRELLIS_API or http://127.0.0.1:15000)');
}

/** Adds `-o, --output table|yaml|json`. */
export function outputOption(cmd: Command, def: OutputFormat = 'table'): Command {
  return cmd.addOption(new Option('-o, --output <format>', 'table | yaml | json').default(def).argParser(parseOutputFormat));
}
