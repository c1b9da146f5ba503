import { request, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

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

export async function httpsOptions(
  kubeConfig: KubeConfig,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<RequestOptions & { url: URL }> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const url = new URL(cluster.server + path);
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
  kubeConfig: KubeConfig,
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
