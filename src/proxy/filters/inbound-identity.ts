/**
 * Inbound: removes every mesh header a caller sent, then tells the app who called:
 * x-trellis-peer carries the SPIFFE ID taken from the verified client certificate.
 */
import { stripMeshHeaders } from '../http/headers.js';
import type { ServiceFilterFactory } from '../pipeline/factory.js';
import type { HttpFilter, MeshRequest, MeshResponse, Next } from '../pipeline/types.js';

export const PEER_HEADER = 'x-trellis-peer';

class InboundIdentity implements HttpFilter {
  readonly name = 'inbound-identity';
  handle(req: MeshRequest, next: Next): Promise<MeshResponse> {
    stripMeshHeaders(req.headers);
    if (req.source.identity) req.headers[PEER_HEADER] = req.source.identity;
    return next(req);
  }
}

export const inboundIdentityFactory: ServiceFilterFactory = {
  name: 'inbound-identity',
  build: () => new InboundIdentity(),
};
