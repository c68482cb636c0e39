/**
 * The xDS-like protocol between proxy and control plane, over HTTP/2 + TLS on the --xds address.
 *
 *   GET  /v1/ca            -> CaInfo              (no client cert; the proxy checks the CA against the token's pin)
 *   POST /v1/certificates  <- CertificateRequest  (join token, or a valid client certificate for renewal)
 *                          -> CertificateResponse
 *   POST /v1/stream        (client certificate required) a bidirectional NDJSON stream:
 *                          proxy -> ProxyMessage, control plane -> ServerMessage.
 */
import { z } from 'zod';
import { LabelMap, Name, Protocol } from './common.js';
import { Snapshot } from './snapshot.js';

export const XDS_PATHS = { ca: '/v1/ca', certificates: '/v1/certificates', stream: '/v1/stream' } as const;

export const CaInfo = z.object({ caPem: z.string(), trustDomain: z.string() }).strict();

export const CertificateRequest = z.object({
  /** PKCS#10 CSR in PEM; its subject and SANs are ignored: identity comes from the token or the current certificate. */
  csr: z.string().min(1),
  token: z.string().optional(),
}).strict();

export const CertificateResponse = z.object({
  certPem: z.string(),
  caPem: z.string(),
  spiffeId: z.string(),
  notAfter: z.string(),
}).strict();

export const InstanceInfo = z.object({
  id: z.string().min(1).max(128),
  service: Name,
  address: z.string().min(1),
  protocol: Protocol,
  labels: LabelMap.default({}),
  version: z.string().optional(),
  /** The proxy's admin listener (loopback: /metrics, /config), for scrape configs. Optional: older proxies omit it. */
  adminAddress: z.string().min(1).optional(),
}).strict();

export const ProxyMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('hello'), instance: InstanceInfo, lastVersion: z.string().optional(), certNotAfter: z.string().optional() }).strict(),
  z.object({ type: z.literal('ack'), version: z.string() }).strict(),
  z.object({ type: z.literal('nack'), version: z.string(), error: z.string() }).strict(),
  z.object({ type: z.literal('cert'), notAfter: z.string() }).strict(),
  z.object({ type: z.literal('goodbye') }).strict(),
]);

export const ServerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('snapshot'), snapshot: z.unknown() }).strict(),
  z.object({ type: z.literal('error'), error: z.string() }).strict(),
]);

export type CaInfo = z.infer<typeof CaInfo>;
export type CertificateRequest = z.infer<typeof CertificateRequest>;
export type CertificateResponse = z.infer<typeof CertificateResponse>;
export type InstanceInfo = z.infer<typeof InstanceInfo>;
export type ProxyMessage = z.infer<typeof ProxyMessage>;
export type ServerMessage = z.infer<typeof ServerMessage>;
export { Snapshot };
