/**
 * Polls `check` until it returns a truthy value, for conditions that have no event to await
 * (another process's state over HTTP). Fails after `timeoutMs` with the last error seen.
 */
export async function pollUntil<T>(check: () => Promise<T | undefined | false | null> | T | undefined | false | null, opts: {
  timeoutMs: number; what: string; intervalMs?: number;
}): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}
