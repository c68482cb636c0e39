/**
 * The control-plane benchmark alone (it also runs at the end of `npm run bench`):
 *
 *   node dist/bench/control-plane.js [--quick] [--profile] [--out DIR] [--services N --endpoints N --connections N]
 *                                    [--proxy-node-args '--max-semi-space-size=1']
 *
 * A real control plane with 1,000 services, 10,000 endpoints and 100 connected proxies: initial push,
 * config convergence, control-plane CPU/RSS, real proxy RSS with that config, certificate signings/s.
 * See docs/performance.md "Control plane".
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { renderControlPlaneMarkdown, runControlPlaneBench } from './lib/cp-bench.js';
import { REPO_ROOT } from './lib/targets.js';
import { round, stopAllManaged } from './lib/util.js';

const argv = process.argv.slice(2);
const outIdx = argv.indexOf('--out');
const OUT_DIR = outIdx >= 0 ? argv[outIdx + 1]! : join(REPO_ROOT, 'bench', 'results');
const num = (flag: string): number | undefined => { const i = argv.indexOf(flag); return i >= 0 ? Number(argv[i + 1]) : undefined; };
const shape = Object.fromEntries(([['services', '--services'], ['endpoints', '--endpoints'], ['connections', '--connections']] as const)
  .map(([k, f]) => [k, num(f)]).filter(([, v]) => v !== undefined));
const log = (s: string) => process.stderr.write(`[cp-bench] ${s}\n`);

async function main(): Promise<void> {
  const started = new Date();
  const result = await runControlPlaneBench({ quick: argv.includes('--quick'), profile: argv.includes('--profile'), outDir: OUT_DIR, log, shape,
    ...(argv.includes('--proxy-node-args') ? { proxyNodeArgs: argv[argv.indexOf('--proxy-node-args') + 1]!.split(' ').filter(Boolean) } : {}) });
  const header = `# Trellis control-plane benchmark — ${started.toISOString()}\n\nCommand: \`node dist/bench/control-plane.js${argv.length ? ' ' + argv.join(' ') : ''}\`. `
    + `Machine: ${cpus().length} CPUs (${cpus()[0]?.model}), ${round(totalmem() / 2 ** 30, 1)} GiB, Node ${process.version}.\n\n`;
  const md = header + renderControlPlaneMarkdown(result);
  process.stdout.write(md + '\n');
  mkdirSync(OUT_DIR, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(OUT_DIR, `control-plane-${stamp}.json`), JSON.stringify({ date: started.toISOString(), argv, result }, null, 2) + '\n');
  writeFileSync(join(OUT_DIR, `control-plane-${stamp}.md`), md + '\n');
  log(`results: ${join(OUT_DIR, `control-plane-${stamp}.{json,md}`)}`);
}

main().then(async () => { await stopAllManaged(); process.exit(0); }, async (err) => {
  log(`FAILED: ${(err as Error).stack ?? err}`);
  await stopAllManaged();
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { void stopAllManaged().then(() => process.exit(130)); });
