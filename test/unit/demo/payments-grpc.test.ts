/**
 * The demo's Payments gRPC service on its own (no mesh): the .proto loads from the package, a call
 * round-trips as protobuf, and bad requests get their gRPC status.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { PAYMENTS_PROTO, PaymentsClient, startPaymentsServer, type PaymentsServer } from '../../../src/demo/payments-grpc.js';

describe('demo payments over gRPC', () => {
  let server: PaymentsServer;
  let client: PaymentsClient;

  before(async () => {
    server = await startPaymentsServer();
    client = new PaymentsClient(server.address);
  });

  after(async () => {
    client.close();
    await server.close();
  });

  it('ships its .proto where the compiled code finds it', () => {
    assert.ok(existsSync(PAYMENTS_PROTO), PAYMENTS_PROTO);
  });

  it('authorizes an order and echoes the amount; no caller identity without a sidecar', async () => {
    const r = await client.authorize({ orderId: 'ord-1', amountCents: 3970, currency: 'EUR' });
    assert.equal(r.status, 'OK', r.details);
    assert.equal(r.reply?.authorized, true);
    assert.equal(r.reply?.amountCents, 3970);
    assert.match(r.reply?.authorizationId ?? '', /^auth-/);
    assert.equal(r.reply?.caller, '', 'x-trellis-peer is only set by a sidecar');
    assert.equal(server.authorized(), 1);
  });

  it('answers INVALID_ARGUMENT without an order id and FAILED_PRECONDITION over the limit', async () => {
    assert.equal((await client.authorize({ orderId: '', amountCents: 100, currency: 'EUR' })).status, 'INVALID_ARGUMENT');
    const over = await client.authorize({ orderId: 'ord-2', amountCents: 100_001, currency: 'EUR' });
    assert.equal(over.status, 'FAILED_PRECONDITION');
    assert.match(over.details ?? '', /limit/);
  });

  it('reports an unreachable server as a status, never a rejection', async () => {
    const nowhere = new PaymentsClient('127.0.0.1:1');
    try {
      const r = await nowhere.authorize({ orderId: 'x', amountCents: 1, currency: 'EUR' }, 2000);
      assert.equal(r.ok, false);
      assert.ok(['UNAVAILABLE', 'DEADLINE_EXCEEDED'].includes(r.status), r.status);
    } finally {
      nowhere.close();
    }
  });
});
