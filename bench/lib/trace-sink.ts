/**
 * A real OTLP/HTTP trace sink for the benchmark's `trellis+tracing` variant: accepts
 * `POST /v1/traces` (OTLP/JSON, as the proxy exports), answers 200 `{}` and discards the body,
 * counting requests, bytes and spans (occurrences of the `"spanId"` key, one per span in the
 * proxy's encoding). Runs in the benchmark process, on 127.0.0.1, port 0.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TraceSink {
  /** Base URL for MeshConfig.tracing.otlpEndpoint. */
  readonly url: string;
  readonly requests: number;
  readonly spans: number;
  readonly bytes: number;
  close(): Promise<void>;
}

const SPAN_KEY = Buffer.from('"spanId"');

function countOccurrences(chunks: Buffer[], needle: Buffer): number {
  const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  let n = 0;
  for (let i = body.indexOf(needle); i !== -1; i = body.indexOf(needle, i + needle.length)) n++;
  return n;
}

export async function startTraceSink(): Promise<TraceSink> {
  let requests = 0, spans = 0, bytes = 0;
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/traces') {
      res.writeHead(404).end();
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => { chunks.push(c); bytes += c.length; });
    req.on('end', () => {
      requests++;
      spans += countOccurrences(chunks, SPAN_KEY);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() { return requests; },
    get spans() { return spans; },
    get bytes() { return bytes; },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
