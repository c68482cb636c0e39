/**
 * Bounded buffering of a request body so that retries can send it again. At most `limit` bytes are
 * held; a body that grows past the limit (or announces a larger content-length) is handed back as
 * a single-use stream that yields what was already read and then the rest, and must not be retried.
 */
import { Readable } from 'node:stream';
import type { HeaderMap } from '../pipeline/types.js';

export const REPLAY_BUFFER_LIMIT = 64 * 1024;

export type BufferedBody =
  | { readonly replayable: true; readonly size: number; replay(): Readable }
  | { readonly replayable: false; readonly stream: Readable };

/** Reads `body` up to `limit` bytes. Never holds more than limit + one chunk in memory. */
export async function bufferBody(body: Readable, headers: HeaderMap, limit = REPLAY_BUFFER_LIMIT): Promise<BufferedBody> {
  const declared = headers['content-length'];
  if (typeof declared === 'string' && Number(declared) > limit) return { replayable: false, stream: body };
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) break;
    const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    chunks.push(chunk);
    size += chunk.length;
    if (size > limit) {
      // Too large to replay: stream what was read, then the remainder, once.
      const rest = async function* (): AsyncGenerator<Buffer> {
        for (const c of chunks.splice(0)) yield c;
        for (;;) {
          const n = await it.next();
          if (n.done) return;
          yield typeof n.value === 'string' ? Buffer.from(n.value) : n.value;
        }
      };
      return { replayable: false, stream: Readable.from(rest(), { objectMode: false }) };
    }
  }
  const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
  return {
    replayable: true,
    size,
    replay: () => Readable.from(size === 0 ? [] : [all], { objectMode: false }),
  };
}
