import type { Command } from 'commander';

export function registerResourceCommands(_program: Command): void {
  // placeholder: replaced by the module's owner
}
