/**
 * The mesh certificate authority (SPEC §4): an ECDSA P-256 root that signs short-lived X.509 SVIDs.
 * The CA never sees a workload's private key: it signs CSRs and takes the identity from its caller
 * (who authorized the request), never from the CSR.
 */
import { isIP } from 'node:net';
import { webcrypto } from 'node:crypto';
import {
  x509,
  subtle,
  EC_KEY_ALG,
  EC_SIGN_ALG,
  type WebCryptoKey,
  generateP256,
  exportPkcs8Pem,
  importP256PrivateKey,
  parseCertificatePem,
  randomSerial,
} from './x509-provider.js';
import { caPin, isValidTrustDomain, parseSpiffeId, spiffeIdTrustDomain } from './spiffe.js';

export interface CaMaterial { certPem: string; keyPem: string }

const ROOT_VALIDITY_MS = 10 * 365.25 * 24 * 3_600_000;
const BACKDATE_MS = 60_000;
const MAX_CSR_PEM_CHARS = 16 * 1024;
const DNS_NAME_RE = /^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;

function assertTrustDomain(trustDomain: string): void {
  if (!isValidTrustDomain(trustDomain)) {
    throw new Error(`invalid trust domain "${trustDomain}" (lowercase letters, digits, ".", "-", "_")`);
  }
}

/**
 * ECDSA P-256 root, valid 10 years, subject CN=Trellis Root CA,O=Trellis, BasicConstraints cA:true (critical),
 * keyUsage keyCertSign|cRLSign (critical), subjectKeyIdentifier, and a URI SAN spiffe://TRUST_DOMAIN
 * binding the root to its trust domain. keyPem is PKCS#8 PEM usable by node:tls.
 */
export async function createRootCa(trustDomain: string): Promise<CaMaterial> {
  assertTrustDomain(trustDomain);
  const keys = await generateP256();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: ['Trellis Root CA'] }, { O: ['Trellis'] }],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + ROOT_VALIDITY_MS),
    keys: keys,
    signingAlgorithm: EC_SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportPkcs8Pem(keys.privateKey) };
}

function uriSans(cert: x509.X509Certificate): string[] {
  const out: string[] = [];
  for (const ext of cert.getExtensions(x509.SubjectAlternativeNameExtension)) {
    for (const n of ext.names.items) if (n.type === 'url') out.push(n.value);
  }
  return out;
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly certPem: string;
  /** caPin(certPem). */
  readonly pin: string;
  readonly notAfter: Date;
  readonly #cert: x509.X509Certificate;
  readonly #key: WebCryptoKey;
  readonly #authorityKeyId: string;

  private constructor(trustDomain: string, certPem: string, cert: x509.X509Certificate, key: WebCryptoKey, authorityKeyId: string) {
    this.trustDomain = trustDomain;
    this.certPem = certPem;
    this.pin = caPin(certPem);
    this.notAfter = cert.notAfter;
    this.#cert = cert;
    this.#key = key;
    this.#authorityKeyId = authorityKeyId;
  }

  /** Validates that the key matches the cert and the cert is a usable CA; throws a clear Error otherwise. */
  static async load(material: CaMaterial, trustDomain: string): Promise<CertificateAuthority> {
    assertTrustDomain(trustDomain);
    if (!material || typeof material.certPem !== 'string' || typeof material.keyPem !== 'string') {
      throw new Error('CA material must have certPem and keyPem strings');
    }
    const cert = parseCertificatePem(material.certPem, 'CA certificate');

    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    if (!bc || !bc.ca) throw new Error('CA certificate is not a CA (basicConstraints cA:TRUE is missing)');
    const ku = cert.getExtension(x509.KeyUsagesExtension);
    if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
      throw new Error('CA certificate keyUsage does not allow keyCertSign');
    }
    const alg = cert.publicKey.algorithm as { name?: string; namedCurve?: string };
    if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
      throw new Error(`CA certificate key must be ECDSA P-256 (found ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ''})`);
    }
    const now = Date.now();
    if (cert.notAfter.getTime() <= now) throw new Error(`CA certificate expired at ${cert.notAfter.toISOString()}`);
    if (cert.notBefore.getTime() > now + BACKDATE_MS) {
      throw new Error(`CA certificate is not valid before ${cert.notBefore.toISOString()}`);
    }
    for (const uri of uriSans(cert)) {
      if (uri.startsWith('spiffe://') && uri !== `spiffe://${trustDomain}`) {
        throw new Error(`CA certificate belongs to ${uri}, not trust domain "${trustDomain}"`);
      }
    }

    const key = await importP256PrivateKey(material.keyPem, 'CA key');
    // Proof of possession: the key must produce signatures the certificate's public key verifies.
    const challenge = webcrypto.getRandomValues(new Uint8Array(32));
    const signature = await subtle.sign(EC_SIGN_ALG, key, challenge);
    const publicKey = await subtle.importKey('spki', cert.publicKey.rawData, EC_KEY_ALG, false, ['verify']);
    if (!(await subtle.verify(EC_SIGN_ALG, publicKey, signature, challenge))) {
      throw new Error('CA key does not match the CA certificate');
    }

    const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
    const authorityKeyId = ski
      ? ski.keyId
      : Buffer.from(await cert.publicKey.getKeyIdentifier()).toString('hex');
    return new CertificateAuthority(trustDomain, material.certPem, cert, key, authorityKeyId);
  }

  /** Workload identities are exactly spiffe://TD/service/NAME: a workload can never get e.g. the control plane's ID. */
  #assertWorkloadIdentity(spiffeId: string): void {
    const parsed = parseSpiffeId(spiffeId);
    if (!parsed) throw new Error(`invalid workload SPIFFE ID "${spiffeId}" (expected spiffe://TRUST_DOMAIN/service/NAME)`);
    if (parsed.trustDomain !== this.trustDomain) {
      throw new Error(`SPIFFE ID "${spiffeId}" is not in trust domain "${this.trustDomain}"`);
    }
  }

  /** Serving identities may be any well-formed SPIFFE ID of this trust domain (e.g. spiffe://TD/control-plane). */
  #assertServingIdentity(spiffeId: string): void {
    const td = spiffeIdTrustDomain(spiffeId);
    if (td === null) throw new Error(`invalid SPIFFE ID "${spiffeId}"`);
    if (td !== this.trustDomain) throw new Error(`SPIFFE ID "${spiffeId}" is not in trust domain "${this.trustDomain}"`);
  }

  #validity(ttlMs: number): { notBefore: Date; notAfter: Date } {
    if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) {
      throw new Error(`certificate TTL must be a positive number of milliseconds (got ${String(ttlMs)})`);
    }
    const now = Date.now();
    const notAfter = Math.min(now + ttlMs, this.notAfter.getTime());
    if (notAfter <= now) throw new Error(`CA certificate expired at ${this.notAfter.toISOString()}`);
    return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(notAfter) };
  }

  async #issue(opts: {
    publicKey: x509.PublicKey;
    sans: x509.JsonGeneralNames;
    ttlMs: number;
  }): Promise<x509.X509Certificate> {
    const { notBefore, notAfter } = this.#validity(opts.ttlMs);
    return x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: [{ O: ['Trellis'] }],
      issuer: this.#cert.subjectName,
      notBefore,
      notAfter,
      publicKey: opts.publicKey,
      signingKey: this.#key,
      signingAlgorithm: EC_SIGN_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        new x509.AuthorityKeyIdentifierExtension(this.#authorityKeyId, false),
        await x509.SubjectKeyIdentifierExtension.create(opts.publicKey, false),
        new x509.SubjectAlternativeNameExtension(opts.sans, false),
      ],
    });
  }

  /**
   * Verifies the CSR's self-signature and that its key is ECDSA P-256 (else throws). IGNORES the requested
   * subject and SANs: the certificate carries exactly one URI SAN, `spiffeId`, which must be in this CA's
   * trust domain. notBefore = now-60s, notAfter = now+ttlMs capped at the CA's notAfter.
   */
  async signWorkload(csrPem: string, spiffeId: string, ttlMs: number): Promise<{ certPem: string; notAfter: Date; serial: string }> {
    this.#assertWorkloadIdentity(spiffeId);
    if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR_PEM_CHARS) {
      throw new Error('CSR must be a PEM string of at most 16 KiB');
    }
    let csr: x509.Pkcs10CertificateRequest;
    try {
      const blocks = x509.PemConverter.decode(csrPem);
      if (blocks.length !== 1 || !/-----BEGIN CERTIFICATE REQUEST-----/.test(csrPem)) {
        throw new Error('expected exactly one "CERTIFICATE REQUEST" PEM block');
      }
      csr = new x509.Pkcs10CertificateRequest(blocks[0]!);
    } catch (err) {
      throw new Error(`CSR cannot be parsed: ${(err as Error).message}`);
    }
    const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
    if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
      throw new Error(`CSR key must be ECDSA P-256 (found ${alg.name ?? 'unknown'}${alg.namedCurve ? ` ${alg.namedCurve}` : ''})`);
    }
    let valid = false;
    try {
      valid = await csr.verify();
    } catch {
      valid = false;
    }
    if (!valid) throw new Error('CSR signature is invalid (proof of possession failed)');

    const cert = await this.#issue({ publicKey: csr.publicKey, sans: [{ type: 'url', value: spiffeId }], ttlMs });
    return { certPem: cert.toString('pem'), notAfter: cert.notAfter, serial: cert.serialNumber };
  }

  /**
   * A serving certificate for the control plane's own TLS endpoint: key generated here (P-256),
   * SANs = URI spiffeId + DNS names + IP addresses, serverAuth+clientAuth. spiffeId may be any well-formed
   * SPIFFE ID of this trust domain (the control plane uses spiffe://TD/control-plane, not a /service/ ID).
   */
  async issueServingCertificate(opts: { spiffeId: string; dnsNames: string[]; ips: string[]; ttlMs: number }): Promise<{ certPem: string; keyPem: string; notAfter: Date }> {
    this.#assertServingIdentity(opts.spiffeId);
    const sans: x509.JsonGeneralNames = [{ type: 'url', value: opts.spiffeId }];
    for (const dns of opts.dnsNames ?? []) {
      if (typeof dns !== 'string' || dns.length > 253 || !DNS_NAME_RE.test(dns)) throw new Error(`invalid DNS name "${dns}"`);
      sans.push({ type: 'dns', value: dns.toLowerCase() });
    }
    for (const ip of opts.ips ?? []) {
      if (typeof ip !== 'string' || isIP(ip) === 0) throw new Error(`invalid IP address "${ip}"`);
      sans.push({ type: 'ip', value: ip });
    }
    const keys = await generateP256();
    const publicKey = await x509.PublicKey.create(keys.publicKey);
    const cert = await this.#issue({ publicKey, sans, ttlMs: opts.ttlMs });
    return { certPem: cert.toString('pem'), keyPem: await exportPkcs8Pem(keys.privateKey), notAfter: cert.notAfter };
  }
}
