import type { Command } from 'commander';

export function registerControlPlane(_program: Command): void {
  // placeholder: replaced by the module's owner
}
