/** What `trellis demo` prints: the start-up message (dashboard URL, what runs, what to try next) and summaries. */
import { AUTHORIZE_PATH } from './payments-grpc.js';

export const DEFAULT_API = '127.0.0.1:15000';

/** How often the rogue caller tries to reach payments. */
export const ROGUE_EVERY_MS = 2000;

/** The start-up message: where the dashboard is, what runs, and what to try next. */
export function banner(o: { api: string; httpProxy: string; rate: number; startupMs: number; durationMs?: number }): string {
  const authorize = `POST ${AUTHORIZE_PATH}`;
  return [
    '',
    `Trellis demo is running (traffic flowing ${(o.startupMs / 1000).toFixed(1)}s after launch).`,
    '',
    `  Dashboard:  http://${o.api}/`,
    `  REST API:   http://${o.api}/api/v1   (OpenAPI: /api/openapi.json)`,
    '',
    '  The shop, every hop through the callers\' sidecars over mTLS:',
    `    loadgen -> web                 HTTP, ${o.rate} requests/s`,
    '    web -> catalog -> inventory    HTTP; catalog v1 90% / v2 10% (HTTPRoute catalog-canary)',
    '    web -> checkout                HTTP',
    `    checkout -> payments           gRPC ${AUTHORIZE_PATH}`,
    `    rogue -> payments              gRPC every ${ROGUE_EVERY_MS / 1000}s, refused: PERMISSION_DENIED (AuthorizationPolicy payments-allow-checkout)`,
    `  Call the shop yourself through loadgen's sidecar:  curl -x http://${o.httpProxy} http://web/`,
    '',
    '  What to try next, from another terminal:',
    ...(o.api === DEFAULT_API ? [] : [`    export TRELLIS_API=http://${o.api}      # the CLI's default is http://${DEFAULT_API}`]),
    '    npx trellis stat                # golden metrics per service: RPS, success rate, p50/p95/p99',
    '    npx trellis stat --edges        # per caller -> callee, checkout -> payments (gRPC) included',
    '    npx trellis top                 # the busiest routes, refreshed live',
    '    npx trellis tap catalog         # every request to and from catalog, live (Ctrl-C ends it)',
    `    npx trellis can-i --from rogue --to payments ${authorize}`,
    `    curl -s http://${o.api}/api/v1/denials      # the most recent denials: rogue -> payments`,
    '  Move the canary: save the route, change the weights (e.g. 50/50), apply it; the v2 share follows within seconds:',
    '    npx trellis get httproute catalog-canary -o yaml > canary.yaml',
    '    npx trellis apply -f canary.yaml',
    '',
    `  Ctrl-C stops everything${o.durationMs ? ` (or it stops by itself after ${Math.round(o.durationMs / 1000)}s)` : ''}.`,
    '',
  ].join('\n');
}

export function formatRogue(w: Record<string, number>): string {
  const parts = Object.entries(w).map(([status, n]) => `${status}×${n}`);
  return parts.length ? ` | rogue -> payments: ${parts.join(' ')}` : '';
}
