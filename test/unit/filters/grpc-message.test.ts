/** grpc-message percent-encoding as the gRPC HTTP/2 spec defines it, and as gRPC clients decode it. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MeshError } from '../../../src/api/errors.js';
import { errorResponse, grpcPercentEncode } from '../../../src/proxy/http/error-response.js';

describe('grpc-message encoding', () => {
  it('keeps printable ASCII except % and encodes the rest as UTF-8 %XX', () => {
    assert.equal(grpcPercentEncode('FORBIDDEN: denied by "p" (rule 0)'), 'FORBIDDEN: denied by "p" (rule 0)');
    assert.equal(grpcPercentEncode('100% sure'), '100%25 sure');
    assert.equal(grpcPercentEncode('a\nb\tc'), 'a%0Ab%09c');
    assert.equal(grpcPercentEncode('→ é'), '%E2%86%92 %C3%A9');
  });

  it('round-trips through a full percent-decoder and reads unchanged through decodeURI (what grpc-js uses)', () => {
    const message = 'FORBIDDEN: denied: no rule of the ALLOW policies of payments ("payments-allow-checkout") matches; 100% → no';
    const encoded = grpcPercentEncode(message);
    assert.equal(decodeURIComponent(encoded), message);
    assert.equal(decodeURI(encoded), message);
    assert.ok(!encoded.includes('%3A'), 'a colon is not encoded');
  });

  it('is what a trailers-only gRPC error response carries', () => {
    const res = errorResponse(new MeshError('FORBIDDEN', 'denied: no rule matches'), true);
    assert.equal(res.headers['grpc-status'], '7');
    assert.equal(res.headers['grpc-message'], 'FORBIDDEN: denied: no rule matches');
  });
});
