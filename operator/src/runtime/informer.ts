import { request } from 'node:https';
import { createInterface } from 'node:readline';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeAccess } from './http.js';
import type { Logger } from 'pino';
import { ApiError, httpsOptions, kubeRequest } from './http.js';

export type EventType = 'add' | 'update' | 'delete';
export type EventHandler<T> = (type: EventType, object: T, previous?: T) => void;

export interface InformerOptions<T extends KubernetesObject = KubernetesObject> {
  /** For logs: what is being watched. */
  name: string;
  kubeConfig: KubeAccess;
  /** Collection path, e.g. /apis/batch/v1/namespaces/vextrus/jobs. */
  path: string;
  labelSelector?: string;
  logger: Logger;
  /** Server-side end of each watch request; the informer then watches again from where it was. */
  watchTimeoutSeconds?: number;
  /** A watch that brings neither events nor bookmarks for this long is restarted. */
  silenceTimeoutMs?: number;
  /**
   * Trims each object before it is cached and handed to handlers (client-go's SetTransform):
   * the cache then holds only what the controller reads. By default managedFields and
   * kubectl's last-applied-configuration annotation are dropped.
   */
  transform?: (object: T) => T;
}

interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T & { code?: number; message?: string };
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** Drops the server-side apply bookkeeping and kubectl's copy of the object from metadata. */
export function stripMetadata<T extends KubernetesObject>(object: T): T {
  const metadata = object.metadata;
  if (!metadata || (!metadata.managedFields && !metadata.annotations?.[LAST_APPLIED])) {
    return object;
  }
  const { managedFields: _managedFields, ...rest } = metadata;
  if (rest.annotations?.[LAST_APPLIED] !== undefined) {
    const { [LAST_APPLIED]: _lastApplied, ...annotations } = rest.annotations;
    rest.annotations = annotations;
  }
  return { ...object, metadata: rest };
}

export function objectKey(object: KubernetesObject): string {
  const { namespace, name } = object.metadata ?? {};
  return namespace ? `${namespace}/${name}` : (name ?? '');
}

/**
 * A list-then-watch cache of one kind, written for the failure modes of long-running watches:
 * it watches from the list's resourceVersion with bookmarks, lists again when the server says
 * the version is gone (410), restarts with exponential backoff after any error or closed stream,
 * and restarts a watch that went silent. Handlers see add, update and delete; a relist reports the
 * differences to the cache, so nothing is missed across restarts.
 */
export class Informer<T extends KubernetesObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: EventHandler<T>[] = [];
  private resourceVersion = '';
  private stopped = false;
  private current?: { abort: () => void };
  private synced?: Promise<void>;
  private failures = 0;

  constructor(private readonly options: InformerOptions<T>) {}

  on(handler: EventHandler<T>): void {
    this.handlers.push(handler);
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  /** Starts listing and watching; resolves once the first list has filled the cache. */
  start(): Promise<void> {
    this.synced ??= new Promise<void>((resolve) => {
      void this.run(resolve);
    });
    return this.synced;
  }

  stop(): void {
    this.stopped = true;
    this.current?.abort();
  }

  private async run(onSynced: () => void): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.resourceVersion) {
          await this.relist();
          onSynced();
        }
        await this.watch();
        this.failures = 0;
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof ApiError && err.status === 410) {
          this.options.logger.info({ informer: this.options.name }, 'watch expired; listing again');
          this.resourceVersion = '';
          continue;
        }
        this.failures += 1;
        const delay = Math.min(30_000, 250 * 2 ** Math.min(this.failures, 7));
        this.options.logger.warn(
          { informer: this.options.name, err, retryInMs: delay },
          'watch failed; restarting',
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private emit(type: EventType, object: T, previous?: T): void {
    for (const handler of this.handlers) {
      try {
        handler(type, object, previous);
      } catch (err) {
        this.options.logger.error({ informer: this.options.name, err }, 'event handler failed');
      }
    }
  }

  private async relist(): Promise<void> {
    const query = new URLSearchParams();
    if (this.options.labelSelector) query.set('labelSelector', this.options.labelSelector);
    const list = await kubeRequest<{ items: T[]; metadata: { resourceVersion: string } }>(
      this.options.kubeConfig,
      'GET',
      `${this.options.path}?${query.toString()}`,
    );
    const seen = new Set<string>();
    for (const listed of list.items) {
      const item = this.trim(listed);
      const key = objectKey(item);
      seen.add(key);
      const previous = this.cache.get(key);
      this.cache.set(key, item);
      if (!previous) this.emit('add', item);
      else if (previous.metadata?.resourceVersion !== item.metadata?.resourceVersion) {
        this.emit('update', item, previous);
      }
    }
    for (const [key, object] of this.cache) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      this.emit('delete', object);
    }
    this.resourceVersion = list.metadata.resourceVersion;
  }

  private async watch(): Promise<void> {
    const query = new URLSearchParams({
      watch: 'true',
      allowWatchBookmarks: 'true',
      resourceVersion: this.resourceVersion,
      timeoutSeconds: String(this.options.watchTimeoutSeconds ?? 240),
    });
    if (this.options.labelSelector) query.set('labelSelector', this.options.labelSelector);
    const { url, ...options } = await httpsOptions(
      this.options.kubeConfig,
      'GET',
      `${this.options.path}?${query.toString()}`,
    );
    const silenceMs = this.options.silenceTimeoutMs ?? 300_000;

    await new Promise<void>((resolve, reject) => {
      let settled = false;
      let silence: NodeJS.Timeout | undefined;
      const finish = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(silence);
        req.destroy();
        if (err) reject(err);
        else resolve();
      };
      const heard = (): void => {
        clearTimeout(silence);
        silence = setTimeout(() => finish(new Error('watch went silent')), silenceMs);
      };
      const req = request(url, options, (res) => {
        res.on('error', (err) => finish(err));
        if (res.statusCode !== 200) {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () =>
            finish(new ApiError(res.statusCode ?? 0, `watch: ${res.statusCode} ${body}`)),
          );
          return;
        }
        heard();
        const lines = createInterface({ input: res });
        // readline re-emits the stream's errors (such as "aborted" on destroy) on itself.
        lines.on('error', (err: Error) => finish(err));
        lines.on('line', (line) => {
          heard();
          try {
            this.apply(JSON.parse(line) as WatchEvent<T>);
          } catch (err) {
            finish(err instanceof Error ? err : new Error(String(err)));
          }
        });
        res.on('end', () => finish());
      });
      req.on('error', (err) => finish(err));
      this.current = { abort: () => finish() };
      req.end();
    });
  }

  private trim(object: T): T {
    return (this.options.transform ?? stripMetadata)(object);
  }

  private apply(event: WatchEvent<T>): void {
    if (event.type === 'ERROR') {
      const error = event.object;
      throw new ApiError(error.code ?? 500, `watch error: ${error.message ?? ''}`);
    }
    const version = event.object.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
    if (event.type === 'BOOKMARK') return;
    const object = this.trim(event.object);
    const key = objectKey(object);
    const previous = this.cache.get(key);
    if (event.type === 'DELETED') {
      this.cache.delete(key);
      this.emit('delete', object);
      return;
    }
    this.cache.set(key, object);
    this.emit(previous ? 'update' : 'add', object, previous);
  }
}
