/** The config version a (real or simulated) proxy has applied, and promises waiting for a version to be reached. */
export class AppliedVersion {
  private current = 0;
  private readonly waiters = new Set<{ v: number; resolve: () => void }>();

  constructor(private readonly name: string) {}

  get value(): number { return this.current; }

  /** Records an applied version and wakes the waiters it satisfies. */
  set(v: number): void {
    this.current = v;
    for (const w of [...this.waiters]) if (this.current >= w.v) { this.waiters.delete(w); w.resolve(); }
  }

  /** Resolves once version v (or later) is applied; rejects after timeoutMs. */
  wait(v: number, timeoutMs: number): Promise<void> {
    if (this.current >= v) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = { v, resolve: () => { clearTimeout(timer); resolve(); } };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.name}: version ${v} not applied within ${timeoutMs}ms (at ${this.current})`));
      }, timeoutMs);
      this.waiters.add(w);
    });
  }
}
