/** `trellis prometheus-config`: the definition; the action is ../commands/prometheus-config.ts. */
import type { Command } from 'commander';
import { apiOption, lazyAction } from './common.js';

export function registerPrometheusConfig(program: Command): void {
  apiOption(program.command('prometheus-config')
    .description('Print a prometheus.yml scraping every connected proxy\'s admin /metrics (for a Prometheus on the proxies\' host: admin listens on loopback)')
    .option('--scrape-interval <duration>', 'scrape and evaluation interval', '15s')
    .option('--job <name>', 'scrape job name', 'trellis-proxies'))
    .action(lazyAction(async () => (await import('../commands/prometheus-config.js')).runPrometheusConfig));
}
