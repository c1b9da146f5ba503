import { kubectl } from '../local/kubectl.js';

/** A platform service that runs as a local process and that IngressRoutes name as a Service. */
export interface LocalBackend {
  /** Service name, as the operator's IngressRoutes name it (vextrus-auth). */
  name: string;
  /** Where the local process listens on 127.0.0.1; also the Service port the routes name. */
  port: number;
}

const MANAGER = 'vextrus-devkit';

/**
 * Makes each backend reachable for Traefik's Kubernetes CRD provider: a Service of type
 * ExternalName that names 127.0.0.1, with the port the process listens on (so the operator's
 * routes must name that port: its AUTH_SERVICE and ORGANIZATION_SERVICE settings).
 *
 * NOTE: a Service without a selector plus an EndpointSlice would be the closer copy of a
 * cluster, but the API server refuses loopback addresses in EndpointSlices ("may not be in the
 * loopback range"), and the services here listen on 127.0.0.1 only. Traefik follows an
 * ExternalName Service once started with allowExternalNameServices.
 */
export async function applyLocalBackends(
  kubeconfig: string,
  namespace: string,
  backends: LocalBackend[],
): Promise<void> {
  const items = backends.map((backend) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: backend.name,
      namespace,
      labels: { 'app.kubernetes.io/managed-by': MANAGER },
    },
    spec: {
      type: 'ExternalName',
      externalName: '127.0.0.1',
      ports: [{ name: 'http', port: backend.port, targetPort: backend.port }],
    },
  }));
  await kubectl(
    kubeconfig,
    ['apply', '--server-side', `--field-manager=${MANAGER}`, '--force-conflicts', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items }),
  );
}
