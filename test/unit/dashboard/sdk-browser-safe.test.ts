/**
 * The dashboard bundles TrellisClient (SPEC: the CLI and the dashboard use the same client), so nothing reachable from
 * src/sdk/client.ts may import Node built-ins: this walks the compiled import graph from dist/src/sdk/client.js.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const entry = join(here, '..', '..', '..', 'src', 'sdk', 'client.js');
const BUILTINS = new Set(builtinModules);

/** Runtime imports of a compiled ES module (`import type` is erased by tsc). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]|(?:^|\n)\s*import\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    out.push((m[1] ?? m[2] ?? m[3])!);
  }
  return out;
}

describe('the SDK is browser-safe', () => {
  it('reaches no Node built-in module and only zod among packages', () => {
    const seen = new Set<string>();
    const packages = new Set<string>();
    const offenders: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const spec of importsOf(file)) {
        if (spec.startsWith('.')) visit(join(dirname(file), spec));
        else if (spec.startsWith('node:') || BUILTINS.has(spec.split('/')[0]!)) offenders.push(`${relative(here, file)} imports ${spec}`);
        else packages.add(spec);
      }
    };
    visit(entry);
    assert.ok(seen.size >= 3, `walked ${seen.size} modules`);
    assert.deepEqual(offenders, []);
    assert.deepEqual([...packages].sort(), ['zod']);
  });
});
