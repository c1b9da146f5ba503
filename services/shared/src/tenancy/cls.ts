import { AsyncLocalStorage } from 'node:async_hooks';
import type { Sequelize } from 'sequelize';
import { TenancyError, TenancyErrorCode } from './errors.js';

type Store = Map<string, unknown>;

/**
 * The subset of a cls-hooked namespace that Sequelize v6 uses (`Sequelize.useCLS`), over
 * AsyncLocalStorage. `run` opens a child context that sees its parent's values, and calls its
 * function synchronously, as Sequelize expects; Sequelize stores the transaction of
 * `sequelize.transaction(callback)` under the key `transaction` and every query reads it.
 */
export class AsyncLocalStorageNamespace {
  private readonly storage = new AsyncLocalStorage<Store>();

  get(key: string): unknown {
    return this.storage.getStore()?.get(key);
  }

  /** Outside of `run` there is no context to write to; Sequelize only writes inside one. */
  set(key: string, value: unknown): void {
    this.storage.getStore()?.set(key, value);
  }

  run<T>(fn: (context: Store) => T): T {
    const store: Store = new Map(this.storage.getStore() ?? []);
    return this.storage.run(store, () => fn(store));
  }

  bind<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
    const store = this.storage.getStore();
    if (!store) return fn;
    return (...args: A) => this.storage.run(store, () => fn(...args));
  }
}

/** The one namespace of the process: Sequelize's CLS support is global to its class. */
export const namespace = new AsyncLocalStorageNamespace();

interface SequelizeClass {
  _cls?: unknown;
  useCLS(ns: object): unknown;
}

/**
 * Makes queries inside `sequelize.transaction(callback)` use that transaction without passing
 * it. Idempotent; refuses to replace a namespace that somebody else installed.
 */
export function enableTransactionContext(sequelize: Sequelize): void {
  const constructor = sequelize.constructor as unknown as SequelizeClass;
  if (constructor._cls === namespace) return;
  if (constructor._cls !== undefined) {
    throw new TenancyError(
      TenancyErrorCode.ClsConflict,
      'cannot enable tenant transactions: Sequelize already uses another CLS namespace',
    );
  }
  constructor.useCLS(namespace);
}
