import type { CoreV1Api, V1Container, V1Pod } from '@kubernetes/client-node';

/** A container that cannot start yet (a missing Secret, say); the node retries later. */
export class ContainerConfigError extends Error {
  readonly reason = 'CreateContainerConfigError';
}

function decode(data: Record<string, string> | undefined, key: string): string | undefined {
  const value = data?.[key];
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
}

async function readSecret(api: CoreV1Api, namespace: string, name: string) {
  try {
    return await api.readNamespacedSecret({ name, namespace });
  } catch {
    return undefined;
  }
}

async function readConfigMap(api: CoreV1Api, namespace: string, name: string) {
  try {
    return await api.readNamespacedConfigMap({ name, namespace });
  } catch {
    return undefined;
  }
}

function fieldValue(pod: V1Pod, fieldPath: string): string {
  switch (fieldPath) {
    case 'metadata.name':
      return pod.metadata?.name ?? '';
    case 'metadata.namespace':
      return pod.metadata?.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata?.uid ?? '';
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.podIP':
    case 'status.hostIP':
      return '127.0.0.1';
    default: {
      const label = /^metadata\.labels\['(.+)'\]$/.exec(fieldPath);
      if (label?.[1]) return pod.metadata?.labels?.[label[1]] ?? '';
      const annotation = /^metadata\.annotations\['(.+)'\]$/.exec(fieldPath);
      if (annotation?.[1]) return pod.metadata?.annotations?.[annotation[1]] ?? '';
      throw new ContainerConfigError(`fieldRef ${fieldPath} is not supported by the local node`);
    }
  }
}

/**
 * The environment a container gets, as a kubelet builds it: `envFrom` first, then `env`, with
 * values from Secrets, ConfigMaps and the Pod's own fields. A missing required reference throws
 * ContainerConfigError.
 */
export async function containerEnvironment(
  api: CoreV1Api,
  pod: V1Pod,
  container: V1Container,
): Promise<Record<string, string>> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    const prefix = source.prefix ?? '';
    if (source.secretRef) {
      const secret = await readSecret(api, namespace, source.secretRef.name ?? '');
      if (!secret && !source.secretRef.optional) {
        throw new ContainerConfigError(`secret "${source.secretRef.name}" not found`);
      }
      for (const key of Object.keys(secret?.data ?? {})) {
        env[prefix + key] = decode(secret?.data, key) ?? '';
      }
    }
    if (source.configMapRef) {
      const map = await readConfigMap(api, namespace, source.configMapRef.name ?? '');
      if (!map && !source.configMapRef.optional) {
        throw new ContainerConfigError(`configmap "${source.configMapRef.name}" not found`);
      }
      for (const [key, value] of Object.entries(map?.data ?? {})) env[prefix + key] = value;
    }
  }
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) {
      env[variable.name] = expand(variable.value, env);
      continue;
    }
    const from = variable.valueFrom;
    if (!from) {
      env[variable.name] = '';
    } else if (from.secretKeyRef) {
      const ref = from.secretKeyRef;
      const value = decode((await readSecret(api, namespace, ref.name ?? ''))?.data, ref.key);
      if (value === undefined && !ref.optional) {
        throw new ContainerConfigError(`key "${ref.key}" of secret "${ref.name}" not found`);
      }
      if (value !== undefined) env[variable.name] = value;
    } else if (from.configMapKeyRef) {
      const ref = from.configMapKeyRef;
      const value = (await readConfigMap(api, namespace, ref.name ?? ''))?.data?.[ref.key];
      if (value === undefined && !ref.optional) {
        throw new ContainerConfigError(`key "${ref.key}" of configmap "${ref.name}" not found`);
      }
      if (value !== undefined) env[variable.name] = value;
    } else if (from.fieldRef) {
      env[variable.name] = fieldValue(pod, from.fieldRef.fieldPath);
    } else {
      throw new ContainerConfigError(`env ${variable.name}: this valueFrom is not supported`);
    }
  }
  return env;
}

/** Kubernetes' `$(NAME)` references to earlier variables; `$$(NAME)` escapes. */
export function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string) => {
    if (match === '$$') return '$';
    return env[name] ?? match;
  });
}
