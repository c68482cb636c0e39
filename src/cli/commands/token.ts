import type { Command } from 'commander';

export function registerToken(_program: Command): void {
  // placeholder: replaced by the module's owner
}
