/**
 * The Debian packages the benchmark needs. Missing ones are installed with apt-get when running as
 * root; otherwise the benchmark fails naming them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const TOOLS: Array<{ bin: string; paths: string[]; pkg: string }> = [
  { bin: 'nginx', paths: ['/usr/sbin/nginx'], pkg: 'nginx-light' },
  { bin: 'haproxy', paths: ['/usr/sbin/haproxy'], pkg: 'haproxy' },
  { bin: 'h2load', paths: ['/usr/bin/h2load'], pkg: 'nghttp2-client' },
  { bin: 'openssl', paths: ['/usr/bin/openssl'], pkg: 'openssl' },
];

function find(paths: string[], bin: string): string | undefined {
  for (const p of paths) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  const out = r.stdout.trim();
  return r.status === 0 && out ? out : undefined;
}

/** Returns the absolute path of every tool, installing missing packages when root. */
export function ensureTools(log: (s: string) => void): Record<string, string> {
  let missing = TOOLS.filter((t) => !find(t.paths, t.bin));
  if (missing.length > 0) {
    const pkgs = missing.map((t) => t.pkg);
    if (process.getuid?.() !== 0) {
      throw new Error(`missing Debian packages: ${pkgs.join(' ')} (run as root, or: sudo apt-get install -y ${pkgs.join(' ')})`);
    }
    log(`installing ${pkgs.join(' ')} with apt-get ...`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { stdio: 'inherit', env });
    missing = TOOLS.filter((t) => !find(t.paths, t.bin));
    if (missing.length > 0) throw new Error(`still missing after apt-get: ${missing.map((t) => t.pkg).join(' ')}`);
  }
  const out: Record<string, string> = {};
  for (const t of TOOLS) out[t.bin] = find(t.paths, t.bin)!;
  return out;
}
