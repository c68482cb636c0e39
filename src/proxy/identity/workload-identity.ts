/**
 * The proxy's current SVID (key, certificate, trust bundle) and the TLS contexts built from it.
 * Rotation swaps in new contexts: new connections use them, existing ones are left alone.
 */
import { EventEmitter } from 'node:events';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { checkPeerCertificate } from '../../pki/spiffe.js';

export interface Svid {
  keyPem: string;
  certPem: string;
  caPem: string;
  spiffeId: string;
  notAfter: Date;
}

/** TLS 1.2 suites allowed: ECDHE key exchange with AEAD ciphers only. TLS 1.3 suites are all AEAD. */
export const MESH_CIPHERS = [
  'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305',
].join(':');

export class WorkloadIdentity extends EventEmitter {
  readonly trustDomain: string;
  private svid!: Svid;
  /** Date.now() when the current SVID was installed. */
  receivedAt = 0;
  private context!: tls.SecureContext;

  constructor(trustDomain: string, svid: Svid) {
    super();
    this.trustDomain = trustDomain;
    this.update(svid);
  }

  update(svid: Svid): void {
    this.svid = svid;
    this.receivedAt = Date.now();
    this.context = tls.createSecureContext({
      key: svid.keyPem,
      cert: svid.certPem,
      ca: svid.caPem,
      minVersion: 'TLSv1.2',
      ciphers: MESH_CIPHERS,
      ecdhCurve: 'X25519:P-256',
    });
    this.emit('rotate', svid);
  }

  get current(): Svid { return this.svid; }
  get secureContext(): tls.SecureContext { return this.context; }

  /** Client options for connecting to a peer that must present `expectedService`'s identity. */
  clientOptions(expectedService: string, alpn: string[]): tls.ConnectionOptions {
    return {
      secureContext: this.context,
      ALPNProtocols: alpn,
      minVersion: 'TLSv1.2',
      servername: undefined,
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => {
        const check = checkPeerCertificate(cert.raw, this.trustDomain);
        if (!check.ok) return new Error(`peer certificate refused: ${check.reason}`);
        if (check.service !== expectedService) {
          return new Error(`peer identity ${check.spiffeId} is not service ${expectedService}`);
        }
        return undefined;
      },
    };
  }

  /** Milliseconds until the current certificate expires. */
  remainingMs(now = Date.now()): number {
    return this.svid.notAfter.getTime() - now;
  }
}

export function certNotAfter(certPem: string): Date {
  return new Date(new X509Certificate(certPem).validTo);
}
