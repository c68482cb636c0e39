import type { Command } from 'commander';

export function registerProxy(_program: Command): void {
  // placeholder: replaced by the module's owner
}
