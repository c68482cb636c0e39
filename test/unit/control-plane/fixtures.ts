/** Shared fixtures for the control-plane unit tests. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../src/control-plane/adapters/store/embedded.js';
import type { RolloutClock } from '../../../src/control-plane/core/rollouts.js';

export const API = 'trellis.dev/v1alpha1';

export async function tempDir(prefix = 'trellis-unit-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function openStore(dir?: string): Promise<EmbeddedStore> {
  return EmbeddedStore.open(dir ?? await tempDir(), { fsync: false });
}

export function service(name: string, spec: Record<string, unknown> = { protocol: 'http' }) {
  return { apiVersion: API, kind: 'Service', metadata: { name }, spec };
}

export function httpRoute(name: string, parent: string, backends: { name: string; weight?: number; subset?: Record<string, string> }[]) {
  return {
    apiVersion: API, kind: 'HTTPRoute', metadata: { name },
    spec: { parentRefs: [{ name: parent }], rules: [{ backendRefs: backends }] },
  };
}

export function trafficPolicy(name: string, target: string, spec: Record<string, unknown> = {}) {
  return { apiVersion: API, kind: 'TrafficPolicy', metadata: { name }, spec: { targetRef: { name: target }, ...spec } };
}

export function authzPolicy(name: string, target: string, action = 'ALLOW') {
  return { apiVersion: API, kind: 'AuthorizationPolicy', metadata: { name }, spec: { targetRef: { name: target }, action, rules: [{ from: [{ services: ['web'] }] }] } };
}

export const noRegisteredServices = { hasService: () => false };

export const T0 = Date.parse('2026-03-01T10:00:00.000Z');

/** Timers that fire only when the test advances the clock, in due order. */
export class FakeClock implements RolloutClock {
  private t = T0;
  private seq = 0;
  private readonly timers = new Map<number, { due: number; fn: () => void }>();
  now(): number { return this.t; }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { due: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void { this.timers.delete(handle as number); }
  get pending(): number { return this.timers.size; }
  /** Moves time forward by `ms`, running every timer due on the way. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { due: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].due <= end && (!next || entry[1].due < next[1].due)) next = entry;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].due;
      next[1].fn();
    }
    this.t = end;
  }
}

