/**
 * A throwaway CA and two leaf certificates (ECDSA P-256, like Trellis SVIDs) made with openssl, for the
 * nginx and HAProxy mTLS pairs. The server certificate names "backend.mesh", the client "client.mesh".
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  ca: string;
  serverCrt: string; serverKey: string; serverPem: string;
  clientCrt: string; clientKey: string; clientPem: string;
}

export function makePki(openssl: string, dir: string): Pki {
  const run = (args: string[]) => execFileSync(openssl, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
    '-days', '2', '-subj', '/CN=bench-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const leaf = (name: string, cn: string, eku: string) => {
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=DNS:${cn}\nextendedKeyUsage=${eku}\nbasicConstraints=CA:FALSE\n`);
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
    writeFileSync(join(dir, `${name}.pem`), readFileSync(join(dir, `${name}.crt`), 'utf8') + readFileSync(join(dir, `${name}.key`), 'utf8'));
  };
  leaf('server', 'backend.mesh', 'serverAuth,clientAuth');
  leaf('client', 'client.mesh', 'clientAuth,serverAuth');
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    serverCrt: join(dir, 'server.crt'), serverKey: join(dir, 'server.key'), serverPem: join(dir, 'server.pem'),
    clientCrt: join(dir, 'client.crt'), clientKey: join(dir, 'client.key'), clientPem: join(dir, 'client.pem'),
  };
}
