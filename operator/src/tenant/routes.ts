import type { KubeAccess } from '../runtime/http.js';
import { ApiError, kubeRequest } from '../runtime/http.js';
import { FIELD_MANAGER, TENANT_LABEL, type Tenant } from './types.js';

const TRAEFIK = '/apis/traefik.io/v1alpha1';

export interface RouteTargets {
  namespace: string;
  auth: { name: string; port: number };
  organization: { name: string; port: number };
  entryPoints: string[];
}

export function middlewareName(slug: string): string {
  return `tenant-${slug}-context`;
}

export function routeName(slug: string): string {
  return `tenant-${slug}`;
}

function ownerReference(tenant: Tenant) {
  return {
    apiVersion: tenant.apiVersion ?? 'platform.vextrus.dev/v1alpha1',
    kind: 'Tenant',
    name: tenant.metadata?.name ?? '',
    uid: tenant.metadata?.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Server-side apply with the operator's field manager, taking over conflicting fields. */
async function apply(kubeConfig: KubeAccess, path: string, body: object): Promise<void> {
  await kubeRequest(
    kubeConfig,
    'PATCH',
    `${path}?fieldManager=${FIELD_MANAGER}&force=true`,
    body,
    'application/apply-patch+yaml',
  );
}

async function remove(kubeConfig: KubeAccess, path: string): Promise<void> {
  try {
    await kubeRequest(kubeConfig, 'DELETE', path);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
}

function hostRule(hosts: string[]): string {
  return hosts.map((host) => `Host(\`${host}\`)`).join(' || ');
}

/**
 * The tenant's gateway objects. The Middleware stamps X-Tenant-ID with the slug, replacing any
 * value a client sent; the IngressRoute sends the auth paths and the organization (and audit)
 * paths of the tenant's hosts to the two services, through that Middleware. The Middleware is
 * applied first: a route naming a missing Middleware would answer 404.
 */
export async function applyRoutes(
  kubeConfig: KubeAccess,
  tenant: Tenant,
  hosts: string[],
  targets: RouteTargets,
): Promise<void> {
  const slug = tenant.spec.slug;
  const base = `${TRAEFIK}/namespaces/${targets.namespace}`;
  const metadata = (name: string) => ({
    name,
    namespace: targets.namespace,
    labels: { [TENANT_LABEL]: slug, 'app.kubernetes.io/managed-by': FIELD_MANAGER },
    ownerReferences: [ownerReference(tenant)],
  });
  await apply(kubeConfig, `${base}/middlewares/${middlewareName(slug)}`, {
    apiVersion: 'traefik.io/v1alpha1',
    kind: 'Middleware',
    metadata: metadata(middlewareName(slug)),
    spec: { headers: { customRequestHeaders: { 'X-Tenant-ID': slug } } },
  });
  const middlewares = [{ name: middlewareName(slug), namespace: targets.namespace }];
  const hostMatch = hostRule(hosts);
  await apply(kubeConfig, `${base}/ingressroutes/${routeName(slug)}`, {
    apiVersion: 'traefik.io/v1alpha1',
    kind: 'IngressRoute',
    metadata: metadata(routeName(slug)),
    spec: {
      entryPoints: targets.entryPoints,
      routes: [
        {
          kind: 'Rule',
          match: `(${hostMatch}) && (PathPrefix(\`/auth\`) || Path(\`/.well-known/jwks.json\`))`,
          middlewares,
          services: [{ name: targets.auth.name, port: targets.auth.port }],
        },
        {
          kind: 'Rule',
          match: `(${hostMatch}) && (PathPrefix(\`/org\`) || PathPrefix(\`/audit\`))`,
          middlewares,
          services: [{ name: targets.organization.name, port: targets.organization.port }],
        },
      ],
    },
  });
}

/** Removes the tenant's route, then its Middleware (the reverse order of applyRoutes). */
export async function removeRoutes(
  kubeConfig: KubeAccess,
  slug: string,
  namespace: string,
): Promise<void> {
  const base = `${TRAEFIK}/namespaces/${namespace}`;
  await remove(kubeConfig, `${base}/ingressroutes/${routeName(slug)}`);
  await remove(kubeConfig, `${base}/middlewares/${middlewareName(slug)}`);
}

/** Whether both gateway objects exist (drift check). */
export async function routesExist(
  kubeConfig: KubeAccess,
  slug: string,
  namespace: string,
): Promise<boolean> {
  const base = `${TRAEFIK}/namespaces/${namespace}`;
  try {
    await kubeRequest(kubeConfig, 'GET', `${base}/middlewares/${middlewareName(slug)}`);
    await kubeRequest(kubeConfig, 'GET', `${base}/ingressroutes/${routeName(slug)}`);
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return false;
    throw err;
  }
}
