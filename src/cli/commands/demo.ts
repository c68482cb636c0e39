/** `trellis demo` (what `npm start` runs): a real control plane, sidecars and a demo shop with traffic. */
import type { Command } from 'commander';
import { parseDuration } from '../../api/duration.js';

interface DemoCliOptions { api: string; dataDir?: string; duration?: string; quiet?: boolean; rate: string }

export function registerDemo(program: Command): void {
  program.command('demo')
    .description('Run a demo mesh: control plane, a shop of services with sidecars, a canary route and steady traffic')
    .option('--api <host:port>', 'control plane REST API and dashboard', '127.0.0.1:15000')
    .option('--data-dir <dir>', 'control plane data dir (default: a fresh temp dir, removed at exit)')
    .option('--duration <duration>', 'stop by itself after this long, e.g. 60s')
    .option('--rate <n>', 'requests per second sent to web', '10')
    .option('--quiet', 'print only the JSON event lines, no banner or summaries')
    .action(async (o: DemoCliOptions) => {
      let durationMs: number | undefined;
      const rate = Number(o.rate);
      try {
        if (o.duration !== undefined) durationMs = parseDuration(o.duration);
        if (!Number.isFinite(rate) || rate <= 0 || rate > 1000) throw new Error(`--rate: expected a number in (0, 1000], got "${o.rate}"`);
      } catch (err) {
        process.stderr.write(`error: ${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      const { runDemo } = await import('../../demo/run.js');
      const code = await runDemo({
        api: o.api,
        ...(o.dataDir ? { dataDir: o.dataDir } : {}),
        ...(durationMs !== undefined ? { durationMs } : {}),
        quiet: Boolean(o.quiet),
        rate,
        summaryEveryMs: 5000,
      });
      process.exit(code);
    });
}
