/**
 * The CA lifecycle: created on first start and persisted in the store (or loaded from --ca-cert/--ca-key),
 * workload certificates signed from CSRs with the TTL of MeshConfig.certificateTTL, and a count of issued certs.
 * The identity always comes from the caller (a verified join token or client certificate), never from the CSR.
 */
import { promises as fsp } from 'node:fs';
import { CertificateAuthority, createRootCa, spiffeIdFor, type CaMaterial } from '../../pki/index.js';
import { controlPlaneId } from '../../pki/uri-sans.js';
import { parseDuration } from '../../api/duration.js';
import { DEFAULT_MESH_CONFIG, type MeshConfigSpec } from '../../api/schema/resources.js';
import type { Store } from './ports.js';

export const CA_BLOB = 'ca';
/** Service names a workload may not claim: they would collide with the control plane's own identity. */
export const RESERVED_SERVICES = new Set(['control-plane']);

interface StoredCa extends CaMaterial { trustDomain: string }

export interface IdentityOptions {
  trustDomain: string;
  caCertFile?: string;
  caKeyFile?: string;
}

export interface SignedWorkload {
  certPem: string;
  caPem: string;
  spiffeId: string;
  notAfter: Date;
  serial: string;
}

export class IdentityService {
  readonly ca: CertificateAuthority;
  readonly trustDomain: string;
  /** "stored" (created here on a first start) or "files" (--ca-cert/--ca-key). */
  readonly source: 'stored' | 'files';
  private issued = 0;
  private readonly meshConfig: () => Promise<MeshConfigSpec>;
  private readonly listeners = new Set<(spiffeId: string) => void>();

  private constructor(ca: CertificateAuthority, source: 'stored' | 'files', meshConfig: () => Promise<MeshConfigSpec>) {
    this.ca = ca;
    this.trustDomain = ca.trustDomain;
    this.source = source;
    this.meshConfig = meshConfig;
  }

  static async init(store: Store, opts: IdentityOptions): Promise<IdentityService> {
    const meshConfig = async (): Promise<MeshConfigSpec> => {
      const r = await store.getResource('MeshConfig', 'default');
      return r?.kind === 'MeshConfig' ? r.spec : DEFAULT_MESH_CONFIG;
    };
    if (opts.caCertFile || opts.caKeyFile) {
      if (!opts.caCertFile || !opts.caKeyFile) throw new Error('--ca-cert and --ca-key go together');
      const material: CaMaterial = {
        certPem: await fsp.readFile(opts.caCertFile, 'utf8'),
        keyPem: await fsp.readFile(opts.caKeyFile, 'utf8'),
      };
      const ca = await CertificateAuthority.load(material, opts.trustDomain);
      return new IdentityService(ca, 'files', meshConfig);
    }
    let text = await store.getBlob(CA_BLOB);
    if (!text) {
      const material = await createRootCa(opts.trustDomain);
      const fresh: StoredCa = { ...material, trustDomain: opts.trustDomain };
      // Compare-and-create: with a shared store, another control plane may have created it first.
      text = await store.putBlobIfAbsent(CA_BLOB, JSON.stringify(fresh), { secret: true });
    }
    const stored = JSON.parse(text) as StoredCa;
    if (stored.trustDomain !== opts.trustDomain) {
      throw new Error(`the data dir's CA belongs to trust domain "${stored.trustDomain}", not "${opts.trustDomain}": use --trust-domain ${stored.trustDomain} or a new --data-dir`);
    }
    const ca = await CertificateAuthority.load({ certPem: stored.certPem, keyPem: stored.keyPem }, opts.trustDomain);
    return new IdentityService(ca, 'stored', meshConfig);
  }

  get caPem(): string { return this.ca.certPem; }
  get pin(): string { return this.ca.pin; }
  get certificatesIssued(): number { return this.issued; }

  /** Called after every issued workload certificate (metrics). */
  onIssued(listener: (spiffeId: string) => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  /** The workload certificate TTL from the MeshConfig (certificateTTL, default 24h). */
  async certificateTtlMs(): Promise<number> {
    return parseDuration((await this.meshConfig()).certificateTTL);
  }

  /** Signs a CSR for `service`'s identity. Throws on a bad CSR or a reserved/invalid service name. */
  async signForService(csrPem: string, service: string): Promise<SignedWorkload> {
    if (RESERVED_SERVICES.has(service)) throw new Error(`service name "${service}" is reserved`);
    const spiffeId = spiffeIdFor(this.trustDomain, service);
    const signed = await this.ca.signWorkload(csrPem, spiffeId, await this.certificateTtlMs());
    this.issued++;
    for (const l of this.listeners) l(spiffeId);
    return { certPem: signed.certPem, caPem: this.ca.certPem, spiffeId, notAfter: signed.notAfter, serial: signed.serial };
  }

  /** The control plane's own serving certificate (spiffe://TD/control-plane, plus DNS names and IPs). */
  issueServingCertificate(dnsNames: string[], ips: string[], ttlMs: number): Promise<{ certPem: string; keyPem: string; notAfter: Date }> {
    return this.ca.issueServingCertificate({ spiffeId: controlPlaneId(this.trustDomain), dnsNames, ips, ttlMs });
  }
}
