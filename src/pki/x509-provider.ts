/**
 * Internal: the one place @peculiar/x509 is wired to node's WebCrypto, plus small PEM/DER
 * helpers shared by the pki modules. Not part of the public pki API.
 */
import './reflect-shim.js'; // must run before @peculiar/x509 loads tsyringe
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
export const subtle = webcrypto.subtle;

/** ECDSA P-256 with SHA-256: the only key/signature profile Trellis issues. */
export const EC_KEY_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const EC_SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;

export type WebCryptoKey = webcrypto.CryptoKey;
export type WebCryptoKeyPair = webcrypto.CryptoKeyPair;

export function toPem(der: ArrayBuffer, label: string): string {
  return x509.PemConverter.encode(der, label);
}

/** A fresh, exportable ECDSA P-256 key pair. */
export async function generateP256(): Promise<WebCryptoKeyPair> {
  return (await subtle.generateKey(EC_KEY_ALG, true, ['sign', 'verify'])) as WebCryptoKeyPair;
}

export async function exportPkcs8Pem(key: WebCryptoKey): Promise<string> {
  return toPem(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** Imports a PKCS#8 PEM ECDSA P-256 private key for signing; throws a clear Error otherwise. */
export async function importP256PrivateKey(keyPem: string, what: string): Promise<WebCryptoKey> {
  let blocks: ArrayBuffer[];
  try {
    blocks = x509.PemConverter.decode(keyPem);
  } catch (err) {
    throw new Error(`${what}: private key is not valid PEM (${(err as Error).message})`);
  }
  if (blocks.length !== 1 || !/-----BEGIN PRIVATE KEY-----/.test(keyPem)) {
    throw new Error(`${what}: expected exactly one PKCS#8 "PRIVATE KEY" PEM block`);
  }
  try {
    return await subtle.importKey('pkcs8', blocks[0]!, EC_KEY_ALG, false, ['sign']);
  } catch (err) {
    throw new Error(`${what}: private key is not an ECDSA P-256 PKCS#8 key (${(err as Error).message})`);
  }
}

/** Parses exactly one PEM certificate; throws a clear Error otherwise. */
export function parseCertificatePem(certPem: string, what: string): x509.X509Certificate {
  let blocks: ArrayBuffer[];
  try {
    blocks = x509.PemConverter.decode(certPem);
  } catch (err) {
    throw new Error(`${what}: certificate is not valid PEM (${(err as Error).message})`);
  }
  if (blocks.length !== 1 || !/-----BEGIN CERTIFICATE-----/.test(certPem)) {
    throw new Error(`${what}: expected exactly one "CERTIFICATE" PEM block, found ${blocks.length}`);
  }
  try {
    return new x509.X509Certificate(blocks[0]!);
  } catch (err) {
    throw new Error(`${what}: certificate cannot be parsed (${(err as Error).message})`);
  }
}

/** A random positive serial of exactly 16 bytes (top bit clear, first byte non-zero), as hex. */
export function randomSerial(): string {
  const bytes = new Uint8Array(16);
  webcrypto.getRandomValues(bytes);
  bytes[0] = bytes[0]! & 0x7f;
  if (bytes[0] === 0) bytes[0] = 0x01;
  return Buffer.from(bytes).toString('hex');
}
