/**
 * Resources through the real CLI against a real control plane: apply, get, delete, describe, with
 * -o table|yaml|json; invalid input refused whole; --dry-run changes nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { runCli, startControlPlane, stopAll, type StartedControlPlane } from '../../helpers/processes.js';

const RESOURCES = `
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: backend}
spec: {protocol: http, port: 8080}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: frontend}
spec: {protocol: http}
---
apiVersion: trellis.dev/v1alpha1
kind: HTTPRoute
metadata: {name: backend-split}
spec:
  parentRefs: [{name: backend}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /api}}]
      backendRefs:
        - {name: backend, subset: {version: v1}, weight: 90}
        - {name: backend, subset: {version: v2}, weight: 10}
---
apiVersion: trellis.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: backend-allow-frontend}
spec:
  targetRef: {name: backend}
  action: ALLOW
  rules: [{from: [{services: [frontend]}]}]
`;

const INVALID = `
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: newsvc}
spec: {protocol: http}
---
apiVersion: trellis.dev/v1alpha1
kind: HTTPRoute
metadata: {name: broken}
spec:
  parentRefs: [{name: backend}]
  rules:
    - backendRefs: [{name: backend, weight: -5}]
---
apiVersion: trellis.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: tp}
spec: {targetRef: {name: backend}, timeouts: {connect: soon}}
`;

describe('CLI resource commands', () => {
  let cp: StartedControlPlane;
  let dir: string;
  const cli = (args: string[], stdin?: string) => runCli(args, { api: cp.api, ...(stdin !== undefined ? { stdin } : {}) });

  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(join(tmpdir(), 'trellis-cli-'));
    await writeFile(join(dir, 'mesh.yaml'), RESOURCES);
    await writeFile(join(dir, 'invalid.yaml'), INVALID);
  });
  after(stopAll);

  it('applies a multi-document file and reports what it created', async () => {
    const res = await cli(['apply', '-f', join(dir, 'mesh.yaml')]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, [
      'service/backend created', 'service/frontend created', 'httproute/backend-split created',
      'authorizationpolicy/backend-allow-frontend created', '',
    ].join('\n'));
    const again = await cli(['apply', '-f', join(dir, 'mesh.yaml')]);
    assert.match(again.stdout, /service\/backend unchanged/);
  });

  it('gets resources as a table, YAML and JSON (kind names case-insensitive, plurals accepted)', async () => {
    const table = await cli(['get', 'services']);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /^NAME\s+PROTOCOL\s+PORT$/);
    assert.match(lines[1]!, /^backend\s+http\s+8080$/);
    assert.match(lines[2]!, /^frontend\s+http\s+-$/);

    const json = await cli(['get', 'HTTPRoutes', '-o', 'json']);
    const routes = JSON.parse(json.stdout) as { metadata: { name: string }; spec: { rules: { backendRefs: { weight: number }[] }[] } }[];
    assert.deepEqual(routes.map((r) => r.metadata.name), ['backend-split']);
    assert.deepEqual(routes[0]!.spec.rules[0]!.backendRefs.map((b) => b.weight), [90, 10]);

    const yaml = await cli(['get', 'service', 'backend', '-o', 'yaml']);
    assert.deepEqual(YAML.parse(yaml.stdout), {
      apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'backend' }, spec: { protocol: 'http', port: 8080 },
    });

    const one = await cli(['get', 'authorizationpolicy', 'backend-allow-frontend', '-o', 'json']);
    assert.equal(JSON.parse(one.stdout).spec.action, 'ALLOW');
  });

  it('YAML output can be applied back unchanged', async () => {
    const yaml = await cli(['get', 'services', '-o', 'yaml']);
    const res = await cli(['apply', '-f', '-'], yaml.stdout);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'service/backend unchanged\nservice/frontend unchanged\n');
  });

  it('describes a service with the routes and policies that reference it', async () => {
    const text = await cli(['describe', 'service', 'backend']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /Name:\s+backend/);
    assert.match(text.stdout, /Identity:\s+spiffe:\/\/trellis\.local\/service\/backend/);
    assert.match(text.stdout, /HTTPRoute\/backend-split/);
    assert.match(text.stdout, /AuthorizationPolicy\/backend-allow-frontend \(ALLOW/);
    const json = JSON.parse((await cli(['describe', 'service', 'backend', '-o', 'json'])).stdout);
    assert.equal(json.name, 'backend');
    assert.equal(json.port, 8080);
    assert.deepEqual(json.instances, []);
    assert.deepEqual(json.routes.map((r: { metadata: { name: string } }) => r.metadata.name), ['backend-split']);
    const yaml = YAML.parse((await cli(['describe', 'service', 'frontend', '-o', 'yaml'])).stdout);
    assert.deepEqual(yaml.policies, [], 'frontend is only named inside a rule, not targeted');
  });

  it('refuses an invalid file whole, printing each field path and reason; nothing changes', async () => {
    const before = (await cli(['get', 'services', '-o', 'json'])).stdout;
    const res = await cli(['apply', '-f', join(dir, 'invalid.yaml')]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^resources\[1\]\.spec\.rules\[0\]\.backendRefs\[0\]\.weight: .+$/m);
    assert.match(res.stderr, /^resources\[2\]\.spec\.timeouts\.connect: must be a duration/m);
    assert.equal(res.stdout, '');
    assert.equal((await cli(['get', 'services', '-o', 'json'])).stdout, before, 'newsvc was not created');
    const missing = await cli(['get', 'service', 'newsvc']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found/);
  });

  it('refuses a reference to an unknown service', async () => {
    const route = { apiVersion: 'trellis.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'tp' }, spec: { targetRef: { name: 'ghost' } } };
    const res = await cli(['apply', '-f', '-'], JSON.stringify(route));
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^resources\[0\]\.spec\.targetRef\.name: unknown service ghost$/m);
  });

  it('--dry-run shows what would change and changes nothing', async () => {
    const doc = `
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: backend}
spec: {protocol: grpc, port: 8080}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: dry}
spec: {protocol: tcp}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: frontend}
spec: {protocol: http}
`;
    const res = await cli(['apply', '--dry-run', '-f', '-'], doc);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'service/backend configured (dry run)\nservice/dry created (dry run)\nservice/frontend unchanged (dry run)\n');
    const json = await cli(['apply', '--dry-run', '-f', '-', '-o', 'json'], doc);
    assert.deepEqual(JSON.parse(json.stdout).results.map((r: { action: string }) => r.action), ['configured', 'created', 'unchanged']);
    assert.equal(JSON.parse((await cli(['get', 'service', 'backend', '-o', 'json'])).stdout).spec.protocol, 'http');
    assert.equal((await cli(['get', 'service', 'dry'])).code, 1);
  });

  it('applies every .yaml/.yml/.json file of a directory', async () => {
    const d = await mkdtemp(join(tmpdir(), 'trellis-dir-'));
    await writeFile(join(d, 'a.yml'), 'apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: dir-a}\nspec: {}\n');
    await writeFile(join(d, 'b.json'), JSON.stringify({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'dir-b' }, spec: { protocol: 'tcp' } }));
    await writeFile(join(d, 'notes.txt'), 'not a resource');
    const res = await cli(['apply', '-f', d]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'service/dir-a created\nservice/dir-b created\n');
  });

  it('deletes a resource; deleting it again fails with not found', async () => {
    const res = await cli(['delete', 'svc', 'dir-a']);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'service/dir-a deleted\n');
    const again = await cli(['delete', 'service', 'dir-a']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /Service "dir-a" not found/);
  });

  it('rejects an unknown kind and an unknown output format', async () => {
    const kind = await cli(['get', 'gateways']);
    assert.equal(kind.code, 1);
    assert.match(kind.stderr, /unknown kind "gateways"/);
    const fmt = await cli(['get', 'services', '-o', 'xml']);
    assert.notEqual(fmt.code, 0);
    assert.match(fmt.stderr, /unknown output format/);
  });

  it('reports an unreachable API clearly', async () => {
    const res = await runCli(['get', 'services', '--api', 'http://127.0.0.1:1']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /cannot reach the control plane API at http:\/\/127\.0\.0\.1:1/);
  });

  it('token create prints only the token', async () => {
    const res = await cli(['token', 'create', '--service', 'backend', '--ttl', '1h']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const bad = await cli(['token', 'create', '--service', 'Bad_Name']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /service: /);
  });
});
