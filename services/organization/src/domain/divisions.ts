import type { Sql } from '../data/sql.js';
import { errors } from '../errors.js';
import { MAX_DIVISION_DEPTH } from './entities.js';

/**
 * Rules of the division tree. Every change of a tree (a division created beneath a parent, or
 * moved) first takes the organization's tree lock, so two concurrent moves cannot together build
 * a cycle that neither saw alone.
 */

/**
 * Serializes the tree changes of one organization until the transaction ends. Advisory locks are
 * shared by the whole database, so the key names the transaction's tenant as well: the id comes
 * from the request before anything checked that it is the tenant's own, and a request naming
 * another tenant's organization must neither wait for that tenant's tree changes (learning when
 * they happen) nor hold them up.
 */
export async function lockTree(sql: Sql, organizationId: string): Promise<void> {
  await sql.rows(
    `SELECT pg_advisory_xact_lock(hashtextextended(
       'vextrus.divisions:' || current_setting('app.tenant_id') || ':' || $1, 0))`,
    [organizationId],
  );
}

/** The ids from a division up to its root, the division first. */
async function ancestry(sql: Sql, id: string): Promise<string[]> {
  const rows = await sql.rows<{ id: string }>(
    `WITH RECURSIVE up (id, parent_id, level) AS (
       SELECT id, parent_id, 1 FROM divisions WHERE id = $1
       UNION ALL
       SELECT d.id, d.parent_id, up.level + 1 FROM divisions d JOIN up ON d.id = up.parent_id
        WHERE up.level <= $2
     )
     SELECT id FROM up ORDER BY level`,
    [id, MAX_DIVISION_DEPTH + 1],
  );
  return rows.map((row) => row.id);
}

/** Levels of the subtree rooted at a division (1 for a leaf). */
async function height(sql: Sql, id: string): Promise<number> {
  const row = await sql.row<{ height: number }>(
    `WITH RECURSIVE down (id, level) AS (
       SELECT id, 1 FROM divisions WHERE id = $1
       UNION ALL
       SELECT d.id, down.level + 1 FROM divisions d JOIN down ON d.parent_id = down.id
        WHERE down.level <= $2
     )
     SELECT max(level)::int AS height FROM down`,
    [id, MAX_DIVISION_DEPTH + 1],
  );
  return row?.height ?? 1;
}

/**
 * Refuses to put `divisionId` (undefined for a new division) beneath `parentId`: a cycle when the
 * parent is the division or one of its descendants, too deep when the deepest division of the
 * moved subtree would sit below MAX_DIVISION_DEPTH.
 */
export async function assertPlacement(
  sql: Sql,
  divisionId: string | undefined,
  parentId: string,
): Promise<void> {
  const above = await ancestry(sql, parentId);
  if (divisionId !== undefined && above.includes(divisionId)) {
    throw errors.DIVISION_CYCLE(
      `Division ${parentId} is the division itself or lies beneath it, so it cannot be its parent`,
      { field: 'parentId' },
    );
  }
  const levels = divisionId === undefined ? 1 : await height(sql, divisionId);
  if (above.length + levels > MAX_DIVISION_DEPTH) {
    throw errors.DIVISION_TOO_DEEP(
      `Beneath ${parentId} the tree would reach depth ${above.length + levels}; ` +
        `at most ${MAX_DIVISION_DEPTH} levels are allowed`,
      { field: 'parentId', maxDepth: MAX_DIVISION_DEPTH },
    );
  }
}
