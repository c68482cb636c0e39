/** Durations as the product contract writes them: "250ms", "2s", "1m30s", "24h". */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_RE = /^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$/;
const PART_RE = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

export function isDuration(text: string): boolean {
  return DURATION_RE.test(text);
}

/** Parses a duration string to milliseconds; throws on malformed input. */
export function parseDuration(text: string): number {
  if (!DURATION_RE.test(text)) throw new Error(`invalid duration "${text}" (expected e.g. 250ms, 2s, 1m, 24h)`);
  let total = 0;
  for (const match of text.matchAll(PART_RE)) total += Number(match[1]) * UNIT_MS[match[2]!]!;
  return total;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
