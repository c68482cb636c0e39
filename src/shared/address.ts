import type { AddressInfo } from 'node:net';

export interface HostPort { host: string; port: number }

/** Parses "HOST:PORT" ("[::1]:80" for IPv6); a bare ":PORT" or "PORT" means 127.0.0.1. */
export function parseHostPort(text: string, what = 'address'): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:\[\]]*)):(\d{1,5})$/.exec(text.trim()) ?? /^()()(\d{1,5})$/.exec(text.trim());
  if (!m) throw new Error(`invalid ${what} "${text}": expected HOST:PORT`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid ${what} "${text}": port out of range`);
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function boundAddress(addr: AddressInfo | string | null): string {
  if (!addr || typeof addr === 'string') throw new Error('listener has no TCP address');
  return formatHostPort(addr.address, addr.port);
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
