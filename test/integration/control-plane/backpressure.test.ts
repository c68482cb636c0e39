/**
 * In-process control plane (startControlPlane API): binding port 0 returns the real addresses, and a
 * proxy that stops reading its config stream is dropped instead of buffering without bound.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type RunningControlPlane } from '../../../src/control-plane/main.js';
import { TrellisClient } from '../../../src/sdk/client.js';
import type { Logger } from '../../../src/shared/log.js';
import { enroll, hello, openStream } from './xds-client.js';

const silent: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silent };

describe('in-process control plane', () => {
  let cp: RunningControlPlane;
  let client: TrellisClient;

  before(async () => {
    cp = await startControlPlane({
      dataDir: await mkdtemp(join(tmpdir(), 'trellis-cp-inproc-')),
      api: '127.0.0.1:0',
      xds: '127.0.0.1:0',
      trustDomain: 'example.org',
      store: 'embedded',
      instanceGraceMs: 60_000,
      xdsOptions: { maxQueueBytes: 256 * 1024 },
      log: silent,
    });
    client = new TrellisClient({ baseUrl: cp.apiAddress });
  });
  after(() => cp.close());

  it('returns the bound addresses when asked for port 0', () => {
    assert.match(cp.apiAddress, /^127\.0\.0\.1:\d+$/);
    assert.match(cp.xdsAddress, /^127\.0\.0\.1:\d+$/);
    assert.doesNotMatch(cp.apiAddress, /:0$/);
  });

  it('drops a proxy that does not read its stream', async () => {
    const cert = await enroll(cp.xdsAddress, (await client.createToken('slow')).token);
    assert.equal(cert.spiffeId, 'spiffe://example.org/service/slow');
    const s = await openStream(cp.xdsAddress, cert);
    s.send(hello('slow-1', 'slow'));
    await s.next((m) => m.type === 'snapshot');
    s.pause();
    // Growing snapshots: every HTTPRoute (all are in every snapshot) carries a big annotation; each apply pushes a new version.
    const big = 'x'.repeat(60_000);
    const state = async () => (await client.proxies()).proxies.find((x) => x.instanceId === 'slow-1');
    for (let i = 0; i < 20 && (await state())?.connected; i++) {
      const before = (await state())?.lastSentVersion;
      await client.apply([{
        apiVersion: 'trellis.dev/v1alpha1', kind: 'HTTPRoute', metadata: { name: `big-${i}`, annotations: { note: big } },
        spec: { parentRefs: [{ name: 'slow' }], rules: [{ backendRefs: [{ name: 'slow' }] }] },
      }]);
      for (;;) {
        const p = await state();
        if (!p?.connected || p.lastSentVersion !== before) break;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    assert.equal((await state())?.connected, false, 'the stream was dropped');
    s.destroy();
  });
});
