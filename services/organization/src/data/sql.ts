import { QueryTypes, type Sequelize } from 'sequelize';

/**
 * Parameterized SQL in the caller's tenant transaction (Sequelize picks it up from the
 * transaction context). Statement text is only ever built from this service's constants; every
 * value a client sends travels as a bind parameter.
 */
export class Sql {
  constructor(private readonly sequelize: Sequelize) {}

  /**
   * Rows of a query, or those of an INSERT, UPDATE or DELETE … RETURNING. RAW hands back pg's
   * row objects as they are (a SELECT-typed query copies every row once more).
   */
  async rows<T extends object>(text: string, bind: unknown[] = []): Promise<T[]> {
    const [rows] = await this.sequelize.query(text, { bind, type: QueryTypes.RAW, raw: true });
    return rows as T[];
  }

  /** The first row, if any. */
  async row<T extends object>(text: string, bind: unknown[] = []): Promise<T | undefined> {
    const [first] = await this.rows<T>(text, bind);
    return first;
  }
}
