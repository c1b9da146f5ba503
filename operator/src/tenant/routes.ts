import type { KubernetesObject, V1OwnerReference } from '@kubernetes/client-node';
import type { KubeAccess } from '../runtime/http.js';
import { ApiError, kubeRequest } from '../runtime/http.js';
import { FIELD_MANAGER, ownerReference, TENANT_LABEL, type Tenant } from './types.js';

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

/** A Traefik object as the operator applies it. */
export interface GatewayObject {
  apiVersion: string;
  kind: 'Middleware' | 'IngressRoute';
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    ownerReferences: V1OwnerReference[];
  };
  spec: object;
}

/**
 * The tenant's gateway objects. The Middleware stamps X-Tenant-ID with the slug, replacing any
 * value a client sent; the IngressRoute sends the auth paths and the organization (and audit)
 * paths of the tenant's hosts to the two services, through that Middleware.
 */
export function desiredRoutes(
  tenant: Tenant,
  hosts: string[],
  targets: RouteTargets,
): { middleware: GatewayObject; route: GatewayObject } {
  const slug = tenant.spec.slug;
  const metadata = (name: string) => ({
    name,
    namespace: targets.namespace,
    labels: { [TENANT_LABEL]: slug, 'app.kubernetes.io/managed-by': FIELD_MANAGER },
    ownerReferences: [ownerReference(tenant)],
  });
  const middlewares = [{ name: middlewareName(slug), namespace: targets.namespace }];
  const hostMatch = hostRule(hosts);
  return {
    middleware: {
      apiVersion: 'traefik.io/v1alpha1',
      kind: 'Middleware',
      metadata: metadata(middlewareName(slug)),
      spec: { headers: { customRequestHeaders: { 'X-Tenant-ID': slug } } },
    },
    route: {
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
    },
  };
}

/**
 * Whether `actual` has every field of `desired` with the same value: objects may hold more
 * fields (defaults, other managers'), lists must match element by element (Traefik's lists and
 * ownerReferences of one owner are replaced whole by an apply).
 */
export function contains(actual: unknown, desired: unknown): boolean {
  if (Array.isArray(desired)) {
    return (
      Array.isArray(actual) &&
      actual.length === desired.length &&
      desired.every((value, i) => contains(actual[i], value))
    );
  }
  if (desired !== null && typeof desired === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
    const fields = actual as Record<string, unknown>;
    return Object.entries(desired).every(([key, value]) => contains(fields[key], value));
  }
  return actual === desired;
}

/** Whether a cached object already is what applying `desired` would make of it. */
export function upToDate(cached: KubernetesObject | undefined, desired: GatewayObject): boolean {
  if (!cached?.metadata || cached.metadata.deletionTimestamp) return false;
  const { labels, ownerReferences } = desired.metadata;
  return (
    contains(cached.metadata.labels, labels) &&
    contains(cached.metadata.ownerReferences, ownerReferences) &&
    contains((cached as { spec?: unknown }).spec, desired.spec)
  );
}

/**
 * Applies the tenant's gateway objects that the cache does not show as they should be (both
 * when no cache is given), the Middleware first: a route naming a missing Middleware would
 * answer 404. Returns how many were applied.
 */
export async function applyRoutes(
  kubeConfig: KubeAccess,
  tenant: Tenant,
  hosts: string[],
  targets: RouteTargets,
  cached: { middleware?: KubernetesObject; route?: KubernetesObject } = {},
): Promise<number> {
  const base = `${TRAEFIK}/namespaces/${targets.namespace}`;
  const { middleware, route } = desiredRoutes(tenant, hosts, targets);
  let applied = 0;
  if (!upToDate(cached.middleware, middleware)) {
    await apply(kubeConfig, `${base}/middlewares/${middleware.metadata.name}`, middleware);
    applied++;
  }
  if (!upToDate(cached.route, route)) {
    await apply(kubeConfig, `${base}/ingressroutes/${route.metadata.name}`, route);
    applied++;
  }
  return applied;
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
