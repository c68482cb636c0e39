/**
 * Several control planes (shared etcd): the addresses a proxy knows, from its token (`cps`), from
 * --control-plane A,B, and from the control plane it is on (`control-planes` message).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ControlPlaneClient, parseControlPlaneAddresses } from '../../../src/proxy/bootstrap/control-plane-client.js';
import { readJoinToken } from '../../../src/proxy/bootstrap/join-token.js';
import { TokenService } from '../../../src/control-plane/core/tokens.js';
import { openStore } from '../control-plane/fixtures.js';

describe('control-plane addresses of a proxy', () => {
  it('parses comma-separated HOST:PORT lists, without duplicates, and refuses a malformed one', () => {
    assert.deepEqual(parseControlPlaneAddresses('127.0.0.1:1, 127.0.0.1:2,127.0.0.1:1'), ['127.0.0.1:1', '127.0.0.1:2']);
    assert.deepEqual(parseControlPlaneAddresses(['127.0.0.1:1', '127.0.0.1:3']), ['127.0.0.1:1', '127.0.0.1:3']);
    assert.throws(() => parseControlPlaneAddresses('127.0.0.1:1,nope'), /control plane address/);
    assert.throws(() => parseControlPlaneAddresses(' , '), /no control plane address/);
  });

  it('a token names every control plane (cps, its own first); a single one keeps the old shape', async () => {
    const ctx = { trustDomain: 'td', pin: 'sha256:00', controlPlaneAddress: () => '127.0.0.1:15010' };
    const store = await openStore();
    const several = await TokenService.init(store, { ...ctx, controlPlaneAddresses: async () => ['127.0.0.1:15011', '127.0.0.1:15010'] });
    const claims = readJoinToken((await several.create('web')).token);
    assert.equal(claims.controlPlane, '127.0.0.1:15010');
    assert.deepEqual(claims.controlPlanes, ['127.0.0.1:15010', '127.0.0.1:15011']);
    const one = await TokenService.init(store, { ...ctx, controlPlaneAddresses: async () => ['127.0.0.1:15010'] });
    const issued = await one.create('web');
    assert.equal(issued.claims.cps, undefined);
    assert.deepEqual(readJoinToken(issued.token).controlPlanes, ['127.0.0.1:15010']);
  });

  it('rotates, and keeps the configured addresses when the control plane announces others', () => {
    const cp = new ControlPlaneClient('127.0.0.1:1,127.0.0.1:2', 'td', 'sha256:00');
    assert.equal(cp.address, '127.0.0.1:1');
    cp.rotate();
    assert.equal(cp.address, '127.0.0.1:2');
    assert.deepEqual(cp.knownAddresses, ['127.0.0.1:2', '127.0.0.1:1']);
    cp.learnAddresses(['127.0.0.1:2', '127.0.0.1:3', 'not an address']);
    assert.equal(cp.address, '127.0.0.1:2', 'the address in use stays in use');
    assert.deepEqual(cp.knownAddresses, ['127.0.0.1:2', '127.0.0.1:1', '127.0.0.1:3']);
    cp.rotate();
    cp.rotate();
    assert.equal(cp.address, '127.0.0.1:3');
    cp.rotate();
    assert.equal(cp.address, '127.0.0.1:2');
  });

  it('tries every address, and fails naming each when none answers (failover itself: etcd-ha integration test)', async () => {
    const cp = new ControlPlaneClient('127.0.0.1:1,127.0.0.1:2', 'td', 'sha256:00');
    // Nothing listens on either (ports 1 and 2 are privileged and unused): both fail, and the error names both.
    await assert.rejects(cp.connect(undefined, 2000), (err: Error) => /127\.0\.0\.1:1/.test(err.message) && /127\.0\.0\.1:2/.test(err.message));
  });
});
