import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Files of the control plane's public-key infrastructure, all in one folder. */
export interface Certificates {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  kubeletClientCert: string;
  kubeletClientKey: string;
  nodeServerCert: string;
  nodeServerKey: string;
  serviceAccountKey: string;
  serviceAccountPublicKey: string;
}

async function ecKey(file: string): Promise<void> {
  await run('openssl', [
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-out',
    file,
  ]);
}

async function signed(
  ca: { cert: string; key: string },
  name: string,
  dir: string,
  subject: string,
  extensions: string[],
): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  const ext = path.join(dir, `${name}.ext`);
  await ecKey(key);
  await run('openssl', ['req', '-new', '-key', key, '-subj', subject, '-out', csr]);
  await writeFile(ext, `${extensions.join('\n')}\n`);
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-set_serial',
    `0x${randomBytes(16).toString('hex')}`,
    '-days',
    '30',
    '-sha256',
    '-out',
    cert,
    '-extfile',
    ext,
  ]);
  return { cert, key };
}

/**
 * Generates, with openssl and ECDSA P-256 keys: one CA; a serving certificate for the API server
 * (localhost, 127.0.0.1 and the in-cluster names); client certificates for an administrator and
 * for the API server's calls to the node; a serving certificate for the local node; and the
 * service-account signing key pair.
 */
export async function generateCertificates(dir: string): Promise<Certificates> {
  const ca = { cert: path.join(dir, 'ca.crt'), key: path.join(dir, 'ca.key') };
  await ecKey(ca.key);
  await run('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    ca.key,
    '-subj',
    '/CN=vextrus-local-ca',
    '-days',
    '30',
    '-sha256',
    '-out',
    ca.cert,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const serverUsage = ['keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth'];
  const clientUsage = ['keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'];
  const [server, admin, kubeletClient, nodeServer] = await Promise.all([
    signed(ca, 'apiserver', dir, '/CN=kube-apiserver', [
      ...serverUsage,
      'subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,' +
        'DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.0.0.1',
    ]),
    signed(ca, 'admin', dir, '/O=system:masters/CN=vextrus-admin', clientUsage),
    signed(
      ca,
      'apiserver-kubelet-client',
      dir,
      '/O=system:masters/CN=kube-apiserver-kubelet-client',
      clientUsage,
    ),
    signed(ca, 'local-node', dir, '/CN=local-node', [
      ...serverUsage,
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ]),
  ]);
  const serviceAccountKey = path.join(dir, 'sa.key');
  const serviceAccountPublicKey = path.join(dir, 'sa.pub');
  await ecKey(serviceAccountKey);
  await run('openssl', [
    'pkey',
    '-in',
    serviceAccountKey,
    '-pubout',
    '-out',
    serviceAccountPublicKey,
  ]);
  return {
    dir,
    caCert: ca.cert,
    caKey: ca.key,
    serverCert: server.cert,
    serverKey: server.key,
    adminCert: admin.cert,
    adminKey: admin.key,
    kubeletClientCert: kubeletClient.cert,
    kubeletClientKey: kubeletClient.key,
    nodeServerCert: nodeServer.cert,
    nodeServerKey: nodeServer.key,
    serviceAccountKey,
    serviceAccountPublicKey,
  };
}
