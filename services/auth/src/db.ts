import { QueryTypes, type Sequelize } from 'sequelize';

/**
 * Runs one statement and returns its rows (also of INSERT/UPDATE … RETURNING). Inside a tenant
 * transaction the statement joins it without being passed it.
 */
export function rows<T extends object>(
  sequelize: Sequelize,
  sql: string,
  bind: unknown[] = [],
): Promise<T[]> {
  return sequelize.query<T>(sql, { bind, type: QueryTypes.SELECT });
}

export async function row<T extends object>(
  sequelize: Sequelize,
  sql: string,
  bind: unknown[] = [],
): Promise<T | undefined> {
  const [first] = await rows<T>(sequelize, sql, bind);
  return first;
}
