/**
 * The dashboard's one TrellisClient (src/sdk/client.ts, bundled in): the same typed client as the CLI. On loopback the
 * API needs no token; elsewhere it answers 401 and the app asks for the admin token, kept in sessionStorage (this tab
 * only, gone when it closes) and sent as `Authorization: Bearer`.
 */
import { TrellisApiError, TrellisClient } from '../../src/sdk/client.js';

const TOKEN_KEY = 'trellis.adminToken';

function storedToken(): string | undefined {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

let current = make(storedToken());
const listeners = new Set<() => void>();

function make(token: string | undefined): TrellisClient {
  return new TrellisClient({ baseUrl: window.location.origin, ...(token ? { token } : {}), timeoutMs: 15_000 });
}

/** The client to use now (replaced when the token changes). */
export function client(): TrellisClient {
  return current;
}

export function hasToken(): boolean {
  return storedToken() !== undefined;
}

/** Stores the admin token for this tab and makes a new client with it; listeners reconnect. */
export function setToken(token: string | undefined): void {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lives until reload */ }
  current = make(token);
  for (const l of listeners) l();
}

/** Called when the client changes (new token). */
export function onClientChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function isUnauthenticated(err: unknown): boolean {
  return err instanceof TrellisApiError && err.status === 401;
}

export { TrellisApiError };
