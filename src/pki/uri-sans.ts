/** The URI SANs of a certificate, read from its structure (never from a text rendering). */
import { x509 } from './x509-provider.js';

export function uriSans(der: Buffer | Uint8Array): string[] {
  const cert = new x509.X509Certificate(new Uint8Array(der));
  const ext = cert.getExtension(x509.SubjectAlternativeNameExtension);
  if (!ext) return [];
  return ext.names.items.filter((n) => n.type === 'url').map((n) => n.value);
}

/** The control plane's own identity in a trust domain. */
export function controlPlaneId(trustDomain: string): string {
  return `spiffe://${trustDomain}/control-plane`;
}
