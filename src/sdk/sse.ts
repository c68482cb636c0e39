/**
 * A Server-Sent Events reader over a fetch() body: works in Node (undici) and in browsers, so the CLI and the
 * dashboard read the control plane's event streams the same way. Follows the WHATWG event-stream format:
 * `event:`, `data:` (joined with "\n"), `id:`, comments (":"), blank line dispatches; CR, LF and CRLF line ends.
 */
export interface SseMessage { event: string; data: string; id?: string }

/** Longest line accepted; a longer one means the peer is not speaking SSE (or is hostile). */
export const MAX_SSE_LINE = 1024 * 1024;

export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  let skipLf = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let start = 0;
      for (let i = 0; i < buffer.length; i++) {
        const c = buffer.charCodeAt(i);
        if (c !== 10 && c !== 13) continue;
        if (c === 10 && skipLf && i === start) { start = i + 1; skipLf = false; continue; }
        skipLf = c === 13;
        const line = buffer.slice(start, i);
        start = i + 1;
        if (line === '') {
          if (data.length > 0) yield { event: event || 'message', data: data.join('\n'), ...(id !== undefined ? { id } : {}) };
          event = ''; data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') id = value;
      }
      buffer = buffer.slice(start);
      if (buffer.length > MAX_SSE_LINE) throw new Error(`event-stream line longer than ${MAX_SSE_LINE} characters`);
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}
