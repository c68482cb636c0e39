export { spiffeIdFor, parseSpiffeId, checkPeerCertificate, caPin, isValidTrustDomain, isValidServiceName } from './spiffe.js';
export type { PeerCheck } from './spiffe.js';
export { createRootCa, CertificateAuthority } from './ca.js';
export type { CaMaterial } from './ca.js';
export { generateWorkloadKey } from './workload-key.js';
