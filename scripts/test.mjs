#!/usr/bin/env node
// Runs the compiled test suite with node's test runner: `node scripts/test.mjs [unit|integration] [filter]`.
// System packages a suite needs are installed first (see scripts/ensure-deps.mjs).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const suites = ['unit', 'integration'];
const only = process.argv[2] && suites.includes(process.argv[2]) ? [process.argv[2]] : suites;
const filter = process.argv[suites.includes(process.argv[2] ?? '') ? 3 : 2];

function walk(dir) {
  let out = [];
  let entries = [];
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const deps = spawnSync(process.execPath, [join(root, 'scripts/ensure-deps.mjs'), ...only], { stdio: 'inherit' });
if (deps.status !== 0) process.exit(deps.status ?? 1);

let files = only.flatMap((s) => walk(join(root, 'dist/test', s))).sort();
if (filter) files = files.filter((f) => f.includes(filter));
if (files.length === 0) {
  console.error('no test files found: did the build run?');
  process.exit(1);
}
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, TRELLIS_LOG_LEVEL: process.env.TRELLIS_LOG_LEVEL ?? 'warn' },
});
process.exit(res.status ?? 1);
