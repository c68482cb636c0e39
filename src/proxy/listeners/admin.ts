/**
 * The admin listener (loopback only): /ready, /metrics, /config, /drain.
 */
import http from 'node:http';
import type { ProxyMetrics } from '../metrics.js';

export interface AdminState {
  ready(): boolean;
  config(): unknown;
  drain(): void;
}

export function createAdminServer(metrics: ProxyMetrics, state: AdminState): http.Server {
  return http.createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body, null, 2));
    };
    try {
      if (path === '/ready') {
        const ready = state.ready();
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(ready ? 'ready\n' : 'not ready\n');
      } else if (path === '/metrics') {
        const text = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      } else if (path === '/config') {
        json(200, state.config());
      } else if (path === '/drain' && req.method === 'POST') {
        state.drain();
        json(202, { draining: true });
      } else {
        json(404, { error: 'NOT_FOUND', message: 'admin endpoints: /ready /metrics /config POST /drain' });
      }
    } catch (err) {
      json(500, { error: 'INTERNAL', message: (err as Error).message });
    }
  });
}
