/**
 * Structured logging: one JSON object per line on stderr (stdout is kept for command output and
 * for the machine-readable "listening" events tests and tools parse).
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const threshold = ORDER[(process.env.TRELLIS_LOG_LEVEL as Level) ?? 'info'] ?? 20;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(base: Record<string, unknown> = {}): Logger {
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < threshold) return;
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields }) + '\n');
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (f) => createLogger({ ...base, ...f }),
  };
}

/**
 * Announces a bound listener on stdout as one JSON line: {"event":"listening","name":...,"address":"host:port"}.
 * Tests and `trellis demo` start processes on port 0 and read the real ports from these lines.
 */
export function announceListening(name: string, address: string): void {
  process.stdout.write(JSON.stringify({ event: 'listening', name, address }) + '\n');
}

export function announce(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

/** One announcement line, as `announceListening` / `announce` print them. */
export interface Announcement { event: string; name?: string; address?: string; [key: string]: unknown }

/**
 * Reads a process's stdout as lines and recognises its announcements: the reading side of
 * `announce`. `onLine` sees every line; `onEvent` only the JSON announcement lines.
 */
export function readAnnouncements(stdout: NodeJS.ReadableStream, handlers: {
  onLine?: (line: string) => void;
  onEvent?: (event: Announcement) => void;
}): void {
  let buf = '';
  stdout.setEncoding('utf8');
  stdout.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (handlers.onEvent && line.startsWith('{"event":')) {
        try {
          handlers.onEvent(JSON.parse(line) as Announcement);
        } catch { /* not an announcement */ }
      }
      handlers.onLine?.(line);
    }
  });
}
