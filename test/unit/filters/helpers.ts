import { Readable } from 'node:stream';
import type { MeshRequest, MeshResponse } from '../../../src/proxy/pipeline/types.js';

export function meshRequest(over: Partial<MeshRequest> & { bodyText?: string } = {}): MeshRequest {
  const { bodyText, ...rest } = over;
  return {
    direction: 'outbound', method: 'GET', path: '/', authority: 'backend', headers: {},
    body: Readable.from(bodyText ? [Buffer.from(bodyText)] : [], { objectMode: false }),
    protocol: 'http', grpc: false, source: {}, destination: 'backend', requestId: 'r1',
    startedAt: 0, signal: new AbortController().signal, attrs: {},
    ...rest,
  };
}

export function response(status: number, text = ''): MeshResponse {
  return { status, headers: {}, body: Readable.from([Buffer.from(text)], { objectMode: false }) };
}

export async function readAll(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
