#!/usr/bin/env node
// Installs the Debian packages a test suite needs when they are missing (CI runs as root with apt).
// Fails naming the packages when they cannot be installed; never lets a test skip silently.
import { spawnSync } from 'node:child_process';

const NEEDS = {
  unit: [],
  // chromium: the dashboard's end-to-end test drives Debian's Chromium (/usr/bin/chromium) with playwright-core.
  // etcd-server (3.4): the `--store etcd` tests run control planes over a real etcd on loopback.
  integration: [['prometheus', 'prometheus'], ['nghttp2-client', 'h2load'], ['sslscan', 'sslscan'], ['chromium', 'chromium'], ['etcd-server', 'etcd']],
};

const suites = process.argv.slice(2);
const wanted = [...new Set(suites.flatMap((s) => NEEDS[s] ?? []))];
const missing = wanted.filter(([, bin]) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0);
if (missing.length === 0) process.exit(0);
const pkgs = missing.map(([pkg]) => pkg);
console.error(`installing Debian packages the tests need: ${pkgs.join(' ')}`);
const isRoot = process.getuid?.() === 0;
const run = (args) => spawnSync(isRoot ? args[0] : 'sudo', isRoot ? args.slice(1) : args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
if (run(['apt-get', 'update']).status !== 0 || run(['apt-get', 'install', '-y', '--no-install-recommends', ...pkgs]).status !== 0) {
  console.error(`could not install ${pkgs.join(' ')}: install them (apt-get install ${pkgs.join(' ')}) and run the tests again`);
  process.exit(1);
}
