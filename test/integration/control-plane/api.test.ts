/** The REST API surface: health, metrics, OpenAPI, JSON errors, body limit, bearer token on loopback. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TrellisClient, TrellisApiError } from '../../../src/sdk/client.js';
import { startControlPlane, stopAll, type StartedControlPlane } from '../../helpers/processes.js';

describe('REST API', () => {
  let cp: StartedControlPlane;
  before(async () => { cp = await startControlPlane(); });
  after(stopAll);

  it('serves /healthz, /readyz and /metrics', async () => {
    assert.deepEqual(await (await fetch(`http://${cp.api}/healthz`)).json(), { status: 'ok' });
    assert.equal((await fetch(`http://${cp.api}/readyz`)).status, 200);
    const metrics = await (await fetch(`http://${cp.api}/metrics`)).text();
    for (const name of ['trellis_cp_connected_proxies', 'trellis_cp_config_version', 'trellis_cp_push_seconds', 'trellis_cp_nacks_total', 'trellis_cp_certificates_issued_total']) {
      assert.match(metrics, new RegExp(`# TYPE ${name} `));
    }
  });

  it('serves a valid OpenAPI document with paths', async () => {
    const res = await fetch(`http://${cp.api}/api/openapi.json`);
    assert.equal(res.status, 200);
    const doc = JSON.parse(await res.text()) as { openapi: string; paths: Record<string, unknown> };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/api/v1/apply']);
    assert.ok(Object.keys(doc.paths).length >= 10);
  });

  it('answers JSON errors with a stable code', async () => {
    const nf = await fetch(`http://${cp.api}/api/v1/nothing`);
    assert.equal(nf.status, 404);
    assert.equal(((await nf.json()) as { error: string }).error, 'NOT_FOUND');
    const kind = await fetch(`http://${cp.api}/api/v1/resources/gateways`);
    assert.equal(((await kind.json()) as { error: string }).error, 'UNKNOWN_KIND');
    const bad = await fetch(`http://${cp.api}/api/v1/apply`, { method: 'POST', body: '{not json' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: string }).error, 'BAD_REQUEST');
    const method = await fetch(`http://${cp.api}/api/v1/apply`);
    assert.equal(method.status, 405);
    const invalid = await fetch(`http://${cp.api}/api/v1/apply`, {
      method: 'POST', body: JSON.stringify({ resources: [{ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'a' }, spec: { protocol: 'udp' } }] }),
    });
    assert.equal(invalid.status, 400);
    const body = (await invalid.json()) as { error: string; errors: { path: string }[] };
    assert.equal(body.error, 'INVALID');
    assert.deepEqual(body.errors.map((e) => e.path), ['resources[0].spec.protocol']);
  });

  it('refuses a body over 4 MiB with 413', async () => {
    const res = await fetch(`http://${cp.api}/api/v1/apply`, { method: 'POST', body: 'x'.repeat(4 * 1024 * 1024 + 1) });
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { error: string }).error, 'REQUEST_TOO_LARGE');
  });

  it('creates the admin token file (0600); with the bearer header on loopback the API still works', async () => {
    const { stat } = await import('node:fs/promises');
    const file = join(cp.dataDir, 'admin-token');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const token = (await readFile(file, 'utf8')).trim();
    assert.ok(token.length >= 32);
    const client = new TrellisClient({ baseUrl: cp.api, token });
    assert.deepEqual(await client.list('services'), []);
    assert.deepEqual(await client.health(), { status: 'ok' });
  });

  it('SDK errors carry status, code and field errors', async () => {
    const client = new TrellisClient({ baseUrl: `http://${cp.api}` });
    await assert.rejects(client.apply([{ kind: 'Service' }]), (err: unknown) => {
      assert.ok(err instanceof TrellisApiError);
      assert.equal(err.status, 400);
      assert.equal(err.code, 'INVALID');
      assert.ok(err.errors.some((e) => e.path === 'resources[0].apiVersion'));
      return true;
    });
    await assert.rejects(client.get('service', 'nope'), (err: unknown) => err instanceof TrellisApiError && err.status === 404 && err.code === 'NOT_FOUND');
  });
});
