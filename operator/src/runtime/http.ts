import { request, type RequestOptions } from 'node:https';

/**
 * What the operator needs of a kubeconfig: the API server's address and the request credentials.
 * @kubernetes/client-node's KubeConfig has both (tests pass one); the operator's process uses its
 * own loader (kubeconfig.ts), since loading that library costs about 35 MB of resident memory.
 */
export interface KubeAccess {
  getCurrentCluster(): { server: string } | null;
  applyToHTTPSOptions(options: RequestOptions): Promise<void>;
}

/** An API server answer that is not a success. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Called once per request the operator makes to the API server. */
export type RequestObserver = (verb: string, resource: string) => void;

const observers = new WeakMap<KubeAccess, RequestObserver>();

/**
 * A KubeAccess that behaves as `kubeConfig` (it inherits everything from it) and reports every
 * request made with it (kubeRequest, informer lists and watches) to `observer`: one operator's
 * count, even when several run in one process on the same configuration.
 */
export function observedKubeConfig(kubeConfig: KubeAccess, observer: RequestObserver): KubeAccess {
  const observed = Object.create(kubeConfig) as KubeAccess;
  observers.set(observed, observer);
  return observed;
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * The Kubernetes verb and resource of a request, as the API server's own metrics name them
 * (`list` of `pods`, `patch` of `tenants/status`). Labels stay bounded: the resource is a plural
 * or plural/subresource of the path, never a name, a namespace or a query; `other` otherwise.
 */
export function describeRequest(method: string, url: URL): { verb: string; resource: string } {
  const parts = url.pathname.split('/').filter(Boolean);
  let rest: string[] | undefined;
  if (parts[0] === 'api' && parts.length >= 3) rest = parts.slice(2);
  else if (parts[0] === 'apis' && parts.length >= 4) rest = parts.slice(3);
  if (rest && rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const [plural, name, sub] = rest ?? [];
  const valid =
    rest && rest.length <= 3 && [plural, sub].every((p) => p === undefined || NAME.test(p));
  const resource = valid && plural ? (sub ? `${plural}/${sub}` : plural) : 'other';
  const verb =
    method === 'GET'
      ? url.searchParams.get('watch') === 'true'
        ? 'watch'
        : name === undefined
          ? 'list'
          : 'get'
      : method === 'POST'
        ? 'create'
        : method === 'PUT'
          ? 'update'
          : method === 'PATCH'
            ? 'patch'
            : method === 'DELETE'
              ? name === undefined
                ? 'deletecollection'
                : 'delete'
              : 'other';
  return { verb, resource };
}

export async function httpsOptions(
  kubeConfig: KubeAccess,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<RequestOptions & { url: URL }> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const url = new URL(cluster.server + path);
  const observer = observers.get(kubeConfig);
  if (observer) {
    const { verb, resource } = describeRequest(method, url);
    observer(verb, resource);
  }
  const options: RequestOptions = { method, headers: { accept: 'application/json', ...headers } };
  await kubeConfig.applyToHTTPSOptions(options);
  return { ...options, url };
}

/**
 * One JSON request to the API server with the kubeconfig's credentials. Used where the generated
 * client gets the wire format wrong (it sends MicroTime values, such as a Lease's renewTime, with
 * millisecond precision, which the API server refuses) and for list calls of the informers.
 */
export async function kubeRequest<T = unknown>(
  kubeConfig: KubeAccess,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  contentType = 'application/json',
  timeoutMs = 30_000,
): Promise<T> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const { url, ...options } = await httpsOptions(
    kubeConfig,
    method,
    path,
    payload === undefined ? {} : { 'content-type': contentType },
  );
  return new Promise<T>((resolve, reject) => {
    const req = request(url, { ...options, timeout: timeoutMs }, (res) => {
      let text = '';
      res.on('error', reject);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = text;
        }
        if (status >= 200 && status < 300) return resolve(parsed as T);
        const info = parsed as { message?: string; reason?: string } | undefined;
        reject(
          new ApiError(
            status,
            `${method} ${path}: ${status} ${info?.message ?? text}`,
            info?.reason,
          ),
        );
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
