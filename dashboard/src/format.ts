/** Number and time formatting for the views. */
export function rps(n: number | undefined): string {
  if (n === undefined) return '–';
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

export function pct(ratio: number | undefined, digits = 1): string {
  if (ratio === undefined) return '–';
  return `${(ratio * 100).toFixed(digits)}%`;
}

export function ms(n: number | undefined): string {
  if (n === undefined) return '–';
  return n >= 1000 ? `${(n / 1000).toFixed(2)}s` : n >= 100 ? `${n.toFixed(0)}ms` : `${n.toFixed(1)}ms`;
}

export function count(n: number | undefined): string {
  if (n === undefined) return '–';
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(n);
}

/** "in 23h", "3m ago". */
export function relative(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '–';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const d = t - now;
  const a = Math.abs(d);
  const text = a < 60_000 ? `${Math.round(a / 1000)}s` : a < 3_600_000 ? `${Math.round(a / 60_000)}m` : a < 172_800_000 ? `${Math.round(a / 3_600_000)}h` : `${Math.round(a / 86_400_000)}d`;
  return d >= 0 ? `in ${text}` : `${text} ago`;
}

export function clock(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString([], { hour12: false });
}

/** Edge/health colour class by success rate. */
export function healthClass(successRate: number | undefined): 'ok' | 'warn' | 'bad' | 'idle' {
  if (successRate === undefined) return 'idle';
  return successRate >= 0.99 ? 'ok' : successRate >= 0.95 ? 'warn' : 'bad';
}

export function labels(l: Record<string, string> | undefined): string {
  if (!l) return '';
  return Object.entries(l).map(([k, v]) => `${k}=${v}`).join(',');
}
