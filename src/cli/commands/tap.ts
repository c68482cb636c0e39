/**
 * `trellis tap SERVICE [--path P] [--method M] [-o table|json]`: live requests seen by every proxy of SERVICE,
 * inbound and outbound, one line each as they complete (GET /api/v1/tap through TrellisClient.tap).
 *
 *   table  TIME DIRECTION SOURCE → DESTINATION METHOD PATH STATUS LATENCY ERROR
 *   json   one TapEvent per line, request headers included (credentials redacted by the proxies)
 *
 * On stderr: how many instances are tapped when that changes, and the dropped count when it grows (events a
 * bound dropped: per-proxy rate, proxy buffer or config-stream backlog, or this client reading too slowly).
 * Ctrl-C / SIGTERM aborts the stream and exits 0. A slow stdout slows reading, and the control plane drops
 * (and counts) instead of buffering.
 */
import { once } from 'node:events';
import { TrellisApiError, type TapEvent, type TapFilter } from '../../sdk/client.js';
import { formatFieldErrors } from '../output.js';
import type { TapOutput } from '../program/tap.js';
import { clientFor, handleApiError, type ClientCliOptions } from './resources.js';

export const TAP_TABLE_HEADER = 'TIME          DIRECTION  SOURCE → DESTINATION            METHOD   PATH                            STATUS  LATENCY   ERROR';

const latency = (ms: number) => `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)}ms`;

/**
 * `text` in a column of `width`: padded, or cut with "…" when longer, so the columns after it stay
 * aligned. `keepEnd` cuts the start instead (paths: a gRPC path's method name is at its end).
 */
function cell(text: string, width: number, keepEnd = false): string {
  if (text.length <= width) return text.padEnd(width);
  return keepEnd ? `…${text.slice(text.length - width + 1)}` : `${text.slice(0, width - 1)}…`;
}

/**
 * One table line for an event (UTC time of the request start). Long sources, methods and paths (gRPC
 * paths often are) are cut to their column; `-o json` has them whole.
 */
export function formatTapLine(e: TapEvent): string {
  const time = e.at.length >= 23 ? e.at.slice(11, 23) : e.at;
  return [
    cell(time, 12),
    cell(e.direction, 9),
    cell(`${e.source} → ${e.destination}`, 30),
    cell(e.method, 7),
    cell(e.path, 30, true),
    cell(String(e.status), 6),
    cell(latency(e.latencyMs), 8),
    e.error ?? '-',
  ].join('  ');
}

export async function runTap(service: string, opts: ClientCliOptions & { path?: string; method?: string; output: TapOutput }): Promise<void> {
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.stdout.on('error', onSignal); // EPIPE: the reader went away
  const filter: TapFilter = { service, ...(opts.path !== undefined ? { path: opts.path } : {}), ...(opts.method !== undefined ? { method: opts.method } : {}) };
  let instances = -1;
  let dropped = 0;
  try {
    if (opts.output === 'table') process.stdout.write(TAP_TABLE_HEADER + '\n');
    for await (const msg of clientFor(opts).tap(filter, { signal: abort.signal })) {
      if (msg.type === 'status') {
        if (msg.instances !== instances) {
          instances = msg.instances;
          process.stderr.write(`tapping ${instances} instance(s) of ${service}\n`);
        }
        if (msg.dropped > dropped) {
          dropped = msg.dropped;
          process.stderr.write(`dropped ${dropped} event(s) so far (rate or buffer bounds, or this client reading too slowly)\n`);
        }
        continue;
      }
      const line = opts.output === 'json' ? JSON.stringify(msg.event) : formatTapLine(msg.event);
      if (!process.stdout.write(line + '\n')) await once(process.stdout, 'drain', { signal: abort.signal });
    }
    if (!abort.signal.aborted) {
      process.stderr.write('error: the control plane ended the tap\n');
      process.exitCode = 1;
    }
  } catch (err) {
    if (abort.signal.aborted) return; // Ctrl-C / SIGTERM / closed stdout: a clean end
    if (err instanceof TrellisApiError && err.code === 'INVALID') {
      process.exitCode = 1;
      process.stderr.write(`error: invalid tap filter\n${formatFieldErrors(err.errors)}`);
      return;
    }
    handleApiError(err);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
