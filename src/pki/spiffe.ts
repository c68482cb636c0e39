/**
 * SPIFFE identities (SPEC §4): every workload is `spiffe://TRUST_DOMAIN/service/NAME`, carried as
 * exactly one URI SAN of an X.509 SVID. Identity is taken only from the parsed certificate.
 */
import { createHash } from 'node:crypto';
import { x509, parseCertificatePem } from './x509-provider.js';

/** SPIFFE trust domain: lowercase letters, digits, ".", "-", "_" (no port, no userinfo). */
const TRUST_DOMAIN_RE = /^[a-z0-9]([a-z0-9._-]{0,253}[a-z0-9])?$/;
/** Service names are DNS labels, like every resource name (src/api/schema/common.ts). */
const SERVICE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SPIFFE_ID_RE = /^spiffe:\/\/([^/]+)\/service\/([^/]+)$/;
const MAX_SPIFFE_ID_LENGTH = 2048;

export function isValidTrustDomain(trustDomain: string): boolean {
  return typeof trustDomain === 'string' && TRUST_DOMAIN_RE.test(trustDomain);
}

export function isValidServiceName(service: string): boolean {
  return typeof service === 'string' && SERVICE_RE.test(service);
}

/** `spiffe://${trustDomain}/service/${service}`; throws on a malformed trust domain or service name. */
export function spiffeIdFor(trustDomain: string, service: string): string {
  if (!isValidTrustDomain(trustDomain)) {
    throw new Error(`invalid trust domain "${trustDomain}" (lowercase letters, digits, ".", "-", "_")`);
  }
  if (!isValidServiceName(service)) {
    throw new Error(`invalid service name "${service}" (lowercase letters, digits and "-", starting and ending alphanumeric)`);
  }
  return `spiffe://${trustDomain}/service/${service}`;
}

/** Strict: spiffe scheme, lowercase trust domain, path exactly /service/NAME (no query, fragment, port, userinfo, dot segments or escapes). */
export function parseSpiffeId(id: string): { trustDomain: string; service: string } | null {
  if (typeof id !== 'string' || id.length > MAX_SPIFFE_ID_LENGTH) return null;
  const m = SPIFFE_ID_RE.exec(id);
  if (!m) return null;
  const trustDomain = m[1]!;
  const service = m[2]!;
  if (!TRUST_DOMAIN_RE.test(trustDomain) || !SERVICE_RE.test(service)) return null;
  return { trustDomain, service };
}

const ANY_SPIFFE_ID_RE = /^spiffe:\/\/([^/]+)((?:\/[A-Za-z0-9._-]+)+)$/;

/**
 * The trust domain of any well-formed SPIFFE ID (spiffe://TD/seg/seg..., segments of [A-Za-z0-9._-], no
 * "." or ".." segments), or null. Used for non-workload identities such as the control plane's
 * `spiffe://TD/control-plane`; workload identities go through parseSpiffeId.
 */
export function spiffeIdTrustDomain(id: string): string | null {
  if (typeof id !== 'string' || id.length > MAX_SPIFFE_ID_LENGTH) return null;
  const m = ANY_SPIFFE_ID_RE.exec(id);
  if (!m || !TRUST_DOMAIN_RE.test(m[1]!)) return null;
  if (m[2]!.split('/').some((seg) => seg === '.' || seg === '..')) return null;
  return m[1]!;
}

export type PeerCheck =
  | { ok: true; spiffeId: string; trustDomain: string; service: string }
  | { ok: false; reason: string };

/** What a certificate's DER says, independent of the caller's trust domain and the clock. */
type Structural =
  | { ok: false; reason: string }
  | { ok: true; spiffeId: string; trustDomain: string; service: string; notBefore: number; notAfter: number };

const OID_SAN = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const MAX_DER_BYTES = 64 * 1024;
const CACHE_MAX = 1024;
const structuralCache = new Map<string, Structural>();

function structuralCheck(der: Uint8Array): Structural {
  let cert: x509.X509Certificate;
  let extensions: x509.Extension[];
  try {
    cert = new x509.X509Certificate(der);
    extensions = cert.extensions;
  } catch (err) {
    return { ok: false, reason: `certificate cannot be parsed: ${(err as Error).message}` };
  }

  const sanExts = extensions.filter((e) => e.type === OID_SAN);
  if (sanExts.length !== 1) {
    return { ok: false, reason: sanExts.length === 0 ? 'certificate has no subjectAltName extension' : 'certificate has more than one subjectAltName extension' };
  }
  const san = sanExts[0]!;
  if (!(san instanceof x509.SubjectAlternativeNameExtension)) {
    return { ok: false, reason: 'subjectAltName extension cannot be parsed' };
  }
  const uris = san.names.items.filter((n) => n.type === 'url').map((n) => n.value);
  if (uris.length !== 1) {
    return { ok: false, reason: `certificate has ${uris.length} URI SANs; exactly one is required` };
  }
  const uri = uris[0]!;
  if (!uri.startsWith('spiffe://')) {
    return { ok: false, reason: 'URI SAN is not a spiffe:// identity' };
  }
  const parsed = parseSpiffeId(uri);
  if (!parsed) {
    return { ok: false, reason: 'URI SAN is not of the form spiffe://TRUST_DOMAIN/service/NAME' };
  }

  const bcExts = extensions.filter((e) => e.type === OID_BASIC_CONSTRAINTS);
  if (bcExts.length > 1) return { ok: false, reason: 'certificate has more than one basicConstraints extension' };
  const bc = bcExts[0];
  if (bc) {
    if (!(bc instanceof x509.BasicConstraintsExtension)) return { ok: false, reason: 'basicConstraints extension cannot be parsed' };
    if (bc.ca) return { ok: false, reason: 'certificate is a CA (basicConstraints cA:TRUE); a workload certificate is required' };
  }

  const notBefore = cert.notBefore.getTime();
  const notAfter = cert.notAfter.getTime();
  if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter)) {
    return { ok: false, reason: 'certificate validity period cannot be parsed' };
  }
  return { ok: true, spiffeId: uri, trustDomain: parsed.trustDomain, service: parsed.service, notBefore, notAfter };
}

function cachedStructuralCheck(der: Uint8Array): Structural {
  const key = createHash('sha256').update(der).digest('hex');
  const hit = structuralCache.get(key);
  if (hit) return hit;
  const result = structuralCheck(der);
  if (structuralCache.size >= CACHE_MAX) {
    const oldest = structuralCache.keys().next();
    if (!oldest.done) structuralCache.delete(oldest.value);
  }
  structuralCache.set(key, result);
  return result;
}

/**
 * Structural check of a peer certificate (DER). Parses with @peculiar/x509 — never by splitting a text
 * rendering of the SAN list. Requires: exactly one URI SAN; spiffe:// scheme; trust domain === trustDomain;
 * path /service/NAME; BasicConstraints cA must not be true; notBefore <= now <= notAfter.
 * The structural part (not the time check) is cached by sha256 of the DER (bounded, oldest evicted).
 * Chain verification is the TLS stack's job; this only decides what identity a verified peer has.
 */
export function checkPeerCertificate(der: Buffer | Uint8Array, trustDomain: string, now: Date = new Date()): PeerCheck {
  if (!(der instanceof Uint8Array) || der.byteLength === 0) return { ok: false, reason: 'no peer certificate' };
  if (der.byteLength > MAX_DER_BYTES) return { ok: false, reason: 'peer certificate is too large' };
  // Copy: a Buffer may be a view into a larger pooled ArrayBuffer.
  const s = cachedStructuralCheck(new Uint8Array(der));
  if (!s.ok) return { ok: false, reason: s.reason };
  if (s.trustDomain !== trustDomain) {
    return { ok: false, reason: `peer trust domain "${s.trustDomain}" is not "${trustDomain}"` };
  }
  const t = now.getTime();
  if (!(t >= s.notBefore)) return { ok: false, reason: 'peer certificate is not yet valid' };
  if (!(t <= s.notAfter)) return { ok: false, reason: 'peer certificate has expired' };
  return { ok: true, spiffeId: s.spiffeId, trustDomain: s.trustDomain, service: s.service };
}

/** "sha256:" + lowercase hex sha256 of the certificate's DER (exactly one PEM certificate). */
export function caPin(certPem: string): string {
  const cert = parseCertificatePem(certPem, 'caPin');
  return `sha256:${createHash('sha256').update(new Uint8Array(cert.rawData)).digest('hex')}`;
}

/** Test/ops hook: how many structural results are cached. */
export function peerCheckCacheSize(): number {
  return structuralCache.size;
}
