/** Option parsers shared by CLI commands. */

/** Commander accumulator for a repeatable option. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `--header NAME=VALUE` (repeatable) → lower-case header map; a repeated name becomes a list. */
export function parseHeaders(list: string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--header "${kv}": use NAME=VALUE`);
    const name = kv.slice(0, eq).trim().toLowerCase();
    const value = kv.slice(eq + 1);
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}
