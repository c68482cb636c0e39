/** Workload keys (SPEC §4): generated in the proxy; only the CSR ever leaves the process. */
import { x509, EC_SIGN_ALG, generateP256, exportPkcs8Pem } from './x509-provider.js';

/**
 * A fresh ECDSA P-256 key (PKCS#8 PEM usable by node:tls) and a PKCS#10 CSR (PEM) signed by it.
 * The subject is informational only: the CA ignores it and assigns the identity itself.
 */
export async function generateWorkloadKey(subjectCommonName?: string): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await generateP256();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(subjectCommonName ? { name: [{ CN: [subjectCommonName] }] } : {}),
    keys: keys,
    signingAlgorithm: EC_SIGN_ALG,
  });
  return { keyPem: await exportPkcs8Pem(keys.privateKey), csrPem: csr.toString('pem') };
}
