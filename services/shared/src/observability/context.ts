import { AsyncLocalStorage } from 'node:async_hooks';

/** What every log line of a request carries; filled in as the request is authenticated. */
export interface RequestContext {
  reqId: string;
  tenant?: string;
  userId?: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

export function runWithRequestContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

export function currentRequestContext(): RequestContext | undefined {
  return storage.getStore();
}
