import type { Sequelize } from 'sequelize';
import { transactionRows } from '@vextrus/shared';

/**
 * Parameterized SQL in the caller's tenant transaction, run on the pg client that transaction
 * holds (transactionRows of the shared library; Sequelize still owns the transaction). Statement
 * text is only ever built from this service's constants; every value a client sends travels as a
 * bind parameter.
 */
export class Sql {
  constructor(private readonly sequelize: Sequelize) {}

  /** Rows of a query, or those of an INSERT, UPDATE or DELETE … RETURNING, as pg returns them. */
  async rows<T extends object>(text: string, bind: unknown[] = []): Promise<T[]> {
    return transactionRows<T>(this.sequelize, text, bind);
  }

  /** The first row, if any. */
  async row<T extends object>(text: string, bind: unknown[] = []): Promise<T | undefined> {
    const [first] = await this.rows<T>(text, bind);
    return first;
  }
}
