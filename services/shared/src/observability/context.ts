import { AsyncLocalStorage } from 'node:async_hooks';

/** What every log line of a request carries; filled in as the request is authenticated. */
export interface RequestContext {
  reqId: string;
  /** The client's address (X-Forwarded-For only through the trusted proxy hops). */
  clientIp?: string;
  userAgent?: string;
  /** The tenant's slug, once the request is authenticated. */
  tenant?: string;
  userId?: string;
  roles?: readonly string[];
}

const storage = new AsyncLocalStorage<RequestContext>();

export function runWithRequestContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

export function currentRequestContext(): RequestContext | undefined {
  return storage.getStore();
}
