/** Shared fixtures for the control-plane unit tests. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../src/control-plane/adapters/store/embedded.js';

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
