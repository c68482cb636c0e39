import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository (package) root: the nearest ancestor of this module holding bin/trellis.js. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'bin', 'trellis.js'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find bin/trellis.js above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}
