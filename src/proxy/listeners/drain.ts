/** Tracks in-flight work so SIGTERM can drain: readiness fails, new work is discouraged, the rest finishes. */
export class DrainState {
  draining = false;
  inflight = 0;
  private waiters: Array<() => void> = [];
  private readonly hooks: Array<() => void> = [];

  begin(): void { this.inflight++; }
  end(): void {
    this.inflight--;
    if (this.inflight === 0 && this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }
  }

  /** Registers something to do when draining starts (GOAWAY sessions, stop accepting…). */
  onDrain(hook: () => void): void { this.hooks.push(hook); }

  /** Starts draining; resolves when nothing is in flight or after timeoutMs. */
  drain(timeoutMs: number): Promise<boolean> {
    if (!this.draining) {
      this.draining = true;
      for (const hook of this.hooks) { try { hook(); } catch { /* listener already closed */ } }
    }
    if (this.inflight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => { clearTimeout(timer); resolve(true); });
    });
  }
}
