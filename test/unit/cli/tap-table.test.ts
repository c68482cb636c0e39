/** `trellis tap`'s table lines (src/cli/commands/tap.ts): columns stay aligned whatever the field lengths. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TAP_TABLE_HEADER, formatTapLine } from '../../../src/cli/commands/tap.js';
import type { TapEvent } from '../../../src/api/schema/tap.js';

function event(over: Partial<TapEvent> = {}): TapEvent {
  return {
    at: '2026-11-30T04:00:00.123Z', instance: 'i1', direction: 'outbound', source: 'web', destination: 'catalog',
    method: 'GET', path: '/items', status: 200, latencyMs: 1.5, requestHeaders: {}, ...over,
  };
}

describe('trellis tap table', () => {
  it('keeps STATUS, LATENCY and ERROR under their headers for long gRPC paths, services and methods', () => {
    const lines = [
      formatTapLine(event()),
      formatTapLine(event({ path: '/trellis.demo.payments.v1.PaymentService/AuthorizeAndCapturePayment', status: 0, error: 'UPSTREAM_RESET' })),
      formatTapLine(event({ source: 'a-very-long-service-name-for-the-caller', destination: 'another-long-destination', method: 'PROPFIND-EXTENDED' })),
    ];
    for (const column of ['STATUS', 'LATENCY', 'ERROR']) {
      const at = TAP_TABLE_HEADER.indexOf(column);
      for (const line of lines) assert.notEqual(line[at - 1], undefined, line);
      for (const line of lines) assert.equal(line.slice(at - 2, at), '  ', `${column} column starts at ${at} in: ${line}`);
    }
    assert.equal(lines[0]!.slice(TAP_TABLE_HEADER.indexOf('STATUS')).split(/\s+/)[0], '200');
    assert.equal(lines[1]!.slice(TAP_TABLE_HEADER.indexOf('ERROR')), 'UPSTREAM_RESET');
    assert.match(lines[1]!, / …ce\/AuthorizeAndCapturePayment {2}0 /, 'a cut path keeps its end (the gRPC method)');
    assert.match(lines[2]!, / a-very-long-service-name-for-… /, 'a cut source → destination keeps its start');
  });
});
