import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../testing/process.js';
import { loginUrl, type TestPlane } from '../testing/plane.js';
import { installCrds, type Cluster } from './cluster.js';

const run = promisify(execFile);

/** The Secret whose DATABASE_* keys the operator's migration Jobs get (its default name). */
export const OWNER_SECRET = 'vextrus-database-owner';

async function crdsFrom(file: string): Promise<V1CustomResourceDefinition[]> {
  return parseAllDocuments(await readFile(file, 'utf8'))
    .map((doc) => doc.toJS() as V1CustomResourceDefinition)
    .filter((doc) => doc?.kind === 'CustomResourceDefinition');
}

/** The Tenant CRD of the chart, and Traefik's IngressRoute and Middleware from its module. */
export async function operatorCrds(): Promise<V1CustomResourceDefinition[]> {
  const traefik = await run(path.join(REPO_ROOT, 'tools/build-tools.sh'), ['--traefik-crds']);
  const wanted = ['ingressroutes.traefik.io', 'middlewares.traefik.io'];
  return [
    ...(await crdsFrom(
      path.join(REPO_ROOT, 'charts/vextrus/crds/tenants.platform.vextrus.dev.yaml'),
    )),
    ...(await crdsFrom(traefik.stdout.trim())).filter((crd) =>
      wanted.includes(crd.metadata?.name ?? ''),
    ),
  ];
}

/** What the operator and its migration Jobs need to reach the plane's database as the owner. */
export function ownerEnvironment(plane: TestPlane): Record<string, string> {
  const roles = plane.db.roles;
  return {
    DATABASE_URL: loginUrl(plane.database.url, roles.owner, plane.ownerPassword),
    VEXTRUS_OWNER_ROLE: roles.owner,
    VEXTRUS_APP_ROLE: roles.app,
    VEXTRUS_RETENTION_ROLE: roles.retention,
    VEXTRUS_TENANT_ROLE_PREFIX: roles.tenantPrefix,
  };
}

/**
 * Readies a cluster for the tenant operator: its CRDs, its namespace, and the owner Secret of the
 * plane's database. Returns the owner environment, for an operator run as a process.
 */
export async function prepareForOperator(
  cluster: Cluster,
  plane: TestPlane,
  namespace = 'vextrus',
): Promise<Record<string, string>> {
  await installCrds(cluster.kubeConfig, await operatorCrds());
  await cluster.core.createNamespace({ body: { metadata: { name: namespace } } });
  const owner = ownerEnvironment(plane);
  await cluster.core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: OWNER_SECRET }, stringData: owner },
  });
  return owner;
}
