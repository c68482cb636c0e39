/**
 * Byte tunnels: plain TCP services, and HTTP/1.1 upgrades (WebSocket) that cannot ride an HTTP/2
 * stream. Both directions are piped; either side closing closes the other.
 */
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';

export function splice(a: Duplex, b: Duplex, onClose?: () => void): void {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    a.destroy();
    b.destroy();
    onClose?.();
  };
  a.on('error', close);
  b.on('error', close);
  a.on('close', close);
  b.on('close', close);
  a.pipe(b);
  b.pipe(a);
}

/** Re-serialises an upgrade request's head, minus mesh headers a client sent, plus `extra`. */
export function upgradeRequestHead(req: IncomingMessage, extra: Record<string, string> = {}): string {
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (lower.startsWith('x-trellis-') || lower === 'x-forwarded-client-cert') continue;
    head += `${name}: ${raw[i + 1]}\r\n`;
  }
  for (const [name, value] of Object.entries(extra)) head += `${name}: ${value}\r\n`;
  return head + '\r\n';
}
