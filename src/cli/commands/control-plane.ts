/** `trellis control-plane`: runs the control plane until SIGTERM/SIGINT. */
import type { Command } from 'commander';
import { parseDuration } from '../../api/duration.js';
import { announceListening, createLogger } from '../../shared/log.js';

interface ControlPlaneCliOptions {
  dataDir: string;
  api: string;
  xds: string;
  trustDomain: string;
  store: string;
  etcdEndpoints?: string;
  etcdPrefix: string;
  caCert?: string;
  caKey?: string;
  instanceGrace: string;
}

export function registerControlPlane(program: Command): void {
  program.command('control-plane')
    .description('Run the control plane: REST API, xDS endpoint for proxies, CA and registry')
    .option('--data-dir <dir>', 'where the embedded store, the CA and the admin token live', './.trellis')
    .option('--api <host:port>', 'REST API, /metrics, /healthz, /readyz and the dashboard', '127.0.0.1:15000')
    .option('--xds <host:port>', 'TLS endpoint proxies connect to', '127.0.0.1:15010')
    .option('--trust-domain <domain>', 'SPIFFE trust domain', 'trellis.local')
    .option('--store <kind>', 'embedded | etcd', 'embedded')
    .option('--etcd-endpoints <urls>', 'etcd client URLs, comma-separated (with --store etcd), e.g. http://127.0.0.1:2379')
    .option('--etcd-prefix <prefix>', 'key prefix in etcd (with --store etcd): control planes with the same prefix serve one mesh', '/trellis/')
    .option('--ca-cert <file>', 'use an existing CA certificate (PEM) instead of the generated one')
    .option('--ca-key <file>', 'the private key (PEM) of --ca-cert')
    .option('--instance-grace <duration>', 'how long a disconnected instance is kept before removal', '15s')
    .action(async (opts: ControlPlaneCliOptions) => {
      if (opts.store !== 'embedded' && opts.store !== 'etcd') {
        process.stderr.write(`error: unknown store "${opts.store}": use embedded or etcd\n`);
        process.exitCode = 2;
        return;
      }
      const etcdEndpoints = (opts.etcdEndpoints ?? '').split(',').map((e) => e.trim()).filter(Boolean);
      if (opts.store === 'etcd' && etcdEndpoints.length === 0) {
        process.stderr.write('error: --store etcd needs --etcd-endpoints URL[,URL...] (e.g. http://127.0.0.1:2379)\n');
        process.exitCode = 2;
        return;
      }
      if (opts.store !== 'etcd' && opts.etcdEndpoints !== undefined) {
        process.stderr.write('error: --etcd-endpoints goes with --store etcd\n');
        process.exitCode = 2;
        return;
      }
      if (Boolean(opts.caCert) !== Boolean(opts.caKey)) {
        process.stderr.write('error: --ca-cert and --ca-key go together\n');
        process.exitCode = 2;
        return;
      }
      let instanceGraceMs: number;
      try {
        instanceGraceMs = parseDuration(opts.instanceGrace);
      } catch (err) {
        process.stderr.write(`error: --instance-grace: ${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      const log = createLogger({ component: 'control-plane' });
      // Loaded on demand: client commands should not pay for the control plane's modules.
      const { startControlPlane } = await import('../../control-plane/main.js');
      let cp: Awaited<ReturnType<typeof startControlPlane>>;
      try {
        cp = await startControlPlane({
          dataDir: opts.dataDir,
          api: opts.api,
          xds: opts.xds,
          trustDomain: opts.trustDomain,
          store: opts.store,
          ...(opts.store === 'etcd' ? { etcdEndpoints, etcdPrefix: opts.etcdPrefix } : {}),
          instanceGraceMs,
          log,
          ...(opts.caCert ? { caCertFile: opts.caCert } : {}),
          ...(opts.caKey ? { caKeyFile: opts.caKey } : {}),
        });
      } catch (err) {
        process.stderr.write(`error: ${(err as Error).message}\n`);
        process.exit(1);
      }
      announceListening('api', cp.apiAddress);
      announceListening('xds', cp.xdsAddress);

      let stopping = false;
      const stop = (signal: NodeJS.Signals) => {
        if (stopping) return;
        stopping = true;
        log.info('shutting down', { signal });
        const force = setTimeout(() => {
          log.error('shutdown took too long; exiting');
          process.exit(1);
        }, 10_000);
        force.unref();
        cp.close().then(() => process.exit(0), (err) => {
          log.error('shutdown failed', { error: (err as Error).message });
          process.exit(1);
        });
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}
