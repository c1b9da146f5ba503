import type { Sequelize, Transaction } from 'sequelize';
import type { RoleNames } from './roles.js';

/**
 * What a migration receives. It runs inside its own transaction, acting as the owner role, with
 * the search path set to its track's schema, so unqualified names land in that schema.
 */
export interface MigrationContext {
  readonly sequelize: Sequelize;
  readonly transaction: Transaction;
  /** `platform`, or the tenant's schema (`tenant_<slug>`). */
  readonly schema: string;
  readonly roles: RoleNames;
  /** Runs SQL in the migration's transaction; several statements are allowed without bind. */
  readonly sql: (text: string, bind?: unknown[]) => Promise<void>;
}

/** A migration file exports `up` and a `down` that exactly reverses it. */
export interface MigrationModule {
  up: (context: MigrationContext) => Promise<void>;
  down: (context: MigrationContext) => Promise<void>;
}

/** A migration and its name, which is its file name without extension: `<timestamp>-<what>`. */
export interface NamedMigration {
  readonly name: string;
  readonly module: MigrationModule;
}
