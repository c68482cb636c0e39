/**
 * `trellis proxy` loads only what the proxy uses (issue #7): a fresh node records every module it
 * resolves (a module.register resolve hook) while it builds the CLI program and imports the proxy
 * command, as bin/trellis.js does for `trellis proxy`. The operator commands' modules (YAML, the SDK,
 * can-i's engine), the control plane, the demo, prom-client's index and jose's verification stay unloaded.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

const dist = new URL('../../../', import.meta.url); // dist/

/** The modules (file URLs) a fresh node resolves while running `steps` (ES module code). */
function resolvedWhile(steps: string): string[] {
  const hook = `let port; export function initialize(d) { port = d.port; port.on('message', () => port.postMessage({ synced: true })); }
export async function resolve(s, c, next) { const r = await next(s, c); port.postMessage({ url: r.url }); return r; }`;
  const code = `import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const urls = [];
let synced;
port1.on('message', (m) => { if (m.url) urls.push(m.url); else synced(); });
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}), import.meta.url, { data: { port: port2 }, transferList: [port2] });
${steps}
// Messages on one port arrive in order: once the hook answers, every resolution before it has arrived.
await new Promise((r) => { synced = r; port1.postMessage('sync'); });
port1.close();
console.log(JSON.stringify(urls));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', cwd: new URL('..', dist) });
  return JSON.parse(out.trim().split('\n').pop()!) as string[];
}

const NOT_FOR_THE_PROXY = [
  /\/node_modules\/yaml\//,
  /\/node_modules\/prom-client\/index\.js$/,
  /\/node_modules\/jose\/dist\/webapi\/index\.js$/,
  /\/node_modules\/jose\/dist\/webapi\/jwt\/verify\.js$/,
  /\/dist\/src\/sdk\//,
  /\/dist\/src\/control-plane\//,
  /\/dist\/src\/demo\//,
  /\/dist\/src\/cli\/output\.js$/,
  /\/dist\/src\/cli\/commands\/(?!proxy\.js|control-plane\.js|demo\.js)/,
];

describe('what the CLI loads', () => {
  it('trellis proxy: the program and the proxy command, nothing of the other commands nor of optional features', () => {
    const urls = resolvedWhile(`const { buildProgram } = await import(${JSON.stringify(new URL('src/cli/main.js', dist).href)});
buildProgram();
await import(${JSON.stringify(new URL('src/cli/commands/proxy.js', dist).href)});`);
    assert.ok(urls.some((u) => u.endsWith('/dist/src/proxy/proxy.js')), 'the hook sees the proxy itself');
    assert.ok(urls.some((u) => u.includes('/node_modules/zod/')), 'zod validates the config stream');
    for (const pattern of NOT_FOR_THE_PROXY) {
      assert.deepEqual(urls.filter((u) => pattern.test(u)), [], `${pattern} is not loaded by trellis proxy`);
    }
  });

  it('trellis --help: the definitions only, no command module beyond control-plane and demo (whose actions load the rest)', () => {
    const urls = resolvedWhile(`const { buildProgram } = await import(${JSON.stringify(new URL('src/cli/main.js', dist).href)});
buildProgram().helpInformation();`);
    assert.deepEqual(urls.filter((u) => /\/dist\/src\/cli\/commands\/(?!control-plane\.js|demo\.js)/.test(u)), []);
    assert.deepEqual(urls.filter((u) => /\/dist\/src\/(proxy|sdk|control-plane|demo)\/|\/node_modules\/(yaml|jose|prom-client)\//.test(u)), []);
  });

  it('the control plane with its embedded store: the etcd client (etcd3, its gRPC stack) stays unloaded', () => {
    const urls = resolvedWhile(`await import(${JSON.stringify(new URL('src/control-plane/main.js', dist).href)});`);
    assert.ok(urls.some((u) => u.endsWith('/dist/src/control-plane/adapters/store/embedded.js')));
    assert.deepEqual(urls.filter((u) => /\/node_modules\/etcd3\/|\/adapters\/store\/etcd\.js$/.test(u)), []);
  });
});
