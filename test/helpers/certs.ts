/**
 * Forging helpers for tests: certificates the real CA would never issue (several URI SANs, CA:TRUE,
 * expired, self-signed, foreign issuer...). Never import this from src/.
 */
import { webcrypto } from 'node:crypto';
// Through the pki provider module: it installs the Reflect shim @peculiar/x509 needs and sets WebCrypto.
import { x509 } from '../../src/pki/x509-provider.js';
import { createRootCa, type CaMaterial } from '../../src/pki/ca.js';

const EC_KEY_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const EC_SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;

export async function forgeCertificate(opts: {
  issuer?: CaMaterial; // omitted => self-signed
  uris?: string[]; // URI SANs (0, 1 or many)
  dnsNames?: string[];
  isCa?: boolean;
  notBefore?: Date;
  notAfter?: Date;
}): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const notBefore = opts.notBefore ?? new Date(now - 60_000);
  const notAfter = opts.notAfter ?? new Date(now + 3_600_000);

  let issuerName: x509.Name | string = 'O=Forged';
  let signingKey: webcrypto.CryptoKey = keys.privateKey;
  let issuerPublicKey: x509.PublicKey = await x509.PublicKey.create(keys.publicKey);
  if (opts.issuer) {
    const issuerCert = new x509.X509Certificate(opts.issuer.certPem);
    issuerName = issuerCert.subjectName;
    issuerPublicKey = issuerCert.publicKey;
    signingKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decode(opts.issuer.keyPem)[0]!, EC_KEY_ALG, false, ['sign']);
  }

  const sans: x509.JsonGeneralNames = [
    ...(opts.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(opts.isCa === true, undefined, true),
    opts.isCa
      ? new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true)
      : new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuerPublicKey),
  ];
  if (!opts.isCa) {
    extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]));
  }
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans));

  const cert = await x509.X509CertificateGenerator.create({
    subject: opts.issuer ? 'O=Forged' : issuerName,
    issuer: issuerName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: EC_SIGN_ALG,
    extensions,
  });
  const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  return { certPem: cert.toString('pem'), keyPem };
}

/** Another, unrelated root (same shape as the real one, different key). */
export async function foreignCa(trustDomain = 'trellis.local'): Promise<CaMaterial> {
  return createRootCa(trustDomain);
}

/** DER bytes of a PEM certificate, as TLS would hand them over. */
export function derOf(certPem: string): Buffer {
  return Buffer.from(new x509.X509Certificate(certPem).rawData);
}
