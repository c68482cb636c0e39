import type { HttpFilter, MeshRequest, MeshResponse, Next } from './types.js';

/**
 * Composes filters into one function, once per config version: f1 → f2 → … → terminal.
 * Per request this is a chain of direct calls, no lookups.
 */
export function composeChain(filters: readonly HttpFilter[], terminal: Next): Next {
  let next = terminal;
  for (let i = filters.length - 1; i >= 0; i--) {
    const filter = filters[i]!;
    const downstream = next;
    next = (req: MeshRequest): Promise<MeshResponse> => filter.handle(req, downstream);
  }
  return next;
}
