import { ENTITIES, type Entity, type EntityName, type Field } from '../domain/entities.js';
import { cursorValueSql, encodeCursor, type Cursor } from '../domain/cursor.js';
import type { Sql } from './sql.js';

/** A record as the API shows it. */
export interface Row {
  id: string;
  status: string;
  version: number;
  [field: string]: unknown;
}

export interface ListQuery {
  sort: string;
  descending: boolean;
  limit: number;
  after?: Cursor;
  status?: string;
  code?: string;
  name?: string;
  /**
   * Column and id pairs that rows must all match: the path's parent, the id filters and the
   * X-Project-ID / X-Site-ID scope. A column may come more than once; rows then match every id.
   */
  equals: readonly (readonly [column: string, id: string])[];
}

export interface Page {
  items: Row[];
  nextCursor: string | null;
}

/**
 * The SET item that stamps a changed row. now() is the time the transaction began, which can be
 * before a row it reaches was created: an archive's cascade waits on a lock while a record is
 * added beneath it and committed, then archives that one too. The stamp never goes below the
 * row's created_at, which its CHECK requires.
 */
const TOUCH = 'updated_at = greatest(now(), created_at)';

/** Row locks taken by reads that precede a write. */
export type Lock = 'share' | 'update';

function selectList(entity: Entity): string {
  return entity.fields.map((field) => `${field.read ?? field.column} AS "${field.api}"`).join(', ');
}

function fieldFor(entity: Entity, api: string): Field {
  const field = entity.fields.find((candidate) => candidate.api === api);
  if (!field) throw new Error(`entity ${entity.name} has no field ${api}`);
  return field;
}

/** Bind value and SQL placeholder for a written field. */
function placeholder(field: Field, position: number): string {
  return field.cast ? `$${position}::${field.cast}` : `$${position}`;
}

function bindValue(field: Field, value: unknown): unknown {
  return field.cast === 'jsonb' && value !== null ? JSON.stringify(value) : value;
}

/** ILIKE pattern that matches `text` anywhere, with the wildcards in it taken literally. */
function containing(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Entities reached from `name` through archive cascades, itself excluded. */
export function descendantEntities(name: EntityName): Entity[] {
  const seen = new Set<EntityName>();
  const visit = (entity: Entity): void => {
    for (const child of entity.children) {
      if (seen.has(child.entity)) continue;
      seen.add(child.entity);
      visit(ENTITIES[child.entity]);
    }
  };
  visit(ENTITIES[name]);
  return [...seen].map((entity) => ENTITIES[entity]);
}

/**
 * Reads and writes the records of the five tables, in the caller's tenant transaction. Table and
 * column names come from the entity definitions only.
 */
export class Records {
  /**
   * `scope` gives, per entity, column and id pairs that every record found by id must match
   * (the X-Project-ID / X-Site-ID context): a record outside them is not found.
   */
  constructor(
    private readonly sql: Sql,
    private readonly scope: (entity: Entity) => readonly (readonly [string, string])[] = () => [],
  ) {}

  find(entity: Entity, id: string, lock?: Lock): Promise<Row | undefined> {
    const suffix = lock === 'share' ? ' FOR SHARE' : lock === 'update' ? ' FOR UPDATE' : '';
    const scope = this.scope(entity);
    const where = scope.map(([column], i) => ` AND ${column} = $${i + 2}`).join('');
    return this.sql.row<Row>(
      `SELECT ${selectList(entity)} FROM ${entity.table} WHERE id = $1${where}${suffix}`,
      [id, ...scope.map(([, value]) => value)],
    );
  }

  /** Inserts a record; `values` are API fields (already validated). */
  async insert(entity: Entity, values: Record<string, unknown>): Promise<Row> {
    const entries = Object.entries(values).filter(([, value]) => value !== undefined);
    const fields = entries.map(([api]) => fieldFor(entity, api));
    const columns = fields.map((field) => field.column).join(', ');
    const placeholders = fields.map((field, i) => placeholder(field, i + 1)).join(', ');
    const bind = entries.map(([, value], i) => bindValue(fields[i] as Field, value));
    const [row] = await this.sql.rows<Row>(
      `INSERT INTO ${entity.table} (${columns}) VALUES (${placeholders})
       RETURNING ${selectList(entity)}`,
      bind,
    );
    if (!row) throw new Error(`cannot insert into ${entity.table}: no row returned`);
    return row;
  }

  /** Applies `changes` when the record still has `version`; undefined when it does not. */
  update(
    entity: Entity,
    id: string,
    version: number,
    changes: Record<string, unknown>,
  ): Promise<Row | undefined> {
    const entries = Object.entries(changes).filter(([, value]) => value !== undefined);
    const assignments = entries.map(([api], i) => {
      const field = fieldFor(entity, api);
      return `${field.column} = ${placeholder(field, i + 3)}`;
    });
    const bind = entries.map(([api, value]) => bindValue(fieldFor(entity, api), value));
    return this.sql.row<Row>(
      `UPDATE ${entity.table}
          SET ${[...assignments, 'version = version + 1', TOUCH].join(', ')}
        WHERE id = $1 AND version = $2
       RETURNING ${selectList(entity)}`,
      [id, version, ...bind],
    );
  }

  async list(entity: Entity, query: ListQuery): Promise<Page> {
    const key = entity.sorts[query.sort];
    if (!key) throw new Error(`entity ${entity.name} cannot sort by ${query.sort}`);
    const bind: unknown[] = [];
    const param = (value: unknown): string => {
      bind.push(value);
      return `$${bind.length}`;
    };
    const where: string[] = [];
    if (query.status !== undefined) where.push(`status = ${param(query.status)}`);
    if (query.code !== undefined) where.push(`code = ${param(query.code)}`);
    if (query.name !== undefined) {
      const pattern = param(containing(query.name));
      where.push(`(${entity.nameColumns.map((c) => `${c} ILIKE ${pattern}`).join(' OR ')})`);
    }
    for (const [column, id] of query.equals) {
      where.push(`${column} = ${param(id)}::uuid`);
    }
    const direction = query.descending ? 'DESC' : 'ASC';
    if (query.after) {
      const comparison = query.descending ? '<' : '>';
      where.push(
        `(${key.column}, id) ${comparison} ` +
          `(${param(query.after.value)}::${key.type}, ${param(query.after.id)}::uuid)`,
      );
    }
    const rows = await this.sql.rows<Row & { _cursor: string }>(
      `SELECT ${selectList(entity)}, ${cursorValueSql(key)} AS "_cursor"
         FROM ${entity.table}
        ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY ${key.column} ${direction}, id ${direction}
        LIMIT ${param(query.limit + 1)}`,
      bind,
    );
    const more = rows.length > query.limit;
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    const nextCursor =
      more && last
        ? encodeCursor({
            sort: `${query.descending ? '-' : ''}${query.sort}`,
            value: last._cursor,
            id: last.id,
          })
        : null;
    // `_cursor` is each row's last property, which V8 removes without slowing the object down.
    for (const row of page) delete (row as Partial<typeof row>)._cursor;
    return { items: page, nextCursor };
  }

  /** Archives a record (already locked) and, with it, its active descendants. */
  async archive(
    entity: Entity,
    id: string,
  ): Promise<{ row: Row; cascaded: Record<string, number> }> {
    const row = await this.sql.row<Row>(
      `UPDATE ${entity.table}
          SET ${entity.archiveSet}, archive_root = $1, version = version + 1, ${TOUCH}
        WHERE id = $1
       RETURNING ${selectList(entity)}`,
      [id],
    );
    if (!row) throw new Error(`cannot archive ${entity.name} ${id}: it vanished`);
    const cascaded: Record<string, number> = {};
    await this.cascade(entity, [id], id, cascaded);
    return { row, cascaded };
  }

  private async cascade(
    entity: Entity,
    ids: string[],
    root: string,
    counts: Record<string, number>,
  ): Promise<void> {
    for (const relation of entity.children) {
      const child = ENTITIES[relation.entity];
      const archived = await this.sql.rows<{ id: string }>(
        `UPDATE ${child.table}
            SET ${child.archiveSet}, archive_root = $2, version = version + 1, ${TOUCH}
          WHERE ${relation.column} = ANY($1::uuid[]) AND status <> 'archived'
         RETURNING id`,
        [ids, root],
      );
      if (archived.length === 0) continue;
      counts[child.plural] = (counts[child.plural] ?? 0) + archived.length;
      await this.cascade(
        child,
        archived.map((r) => r.id),
        root,
        counts,
      );
    }
  }

  /** Restores a record and what its own archiving archived with it. */
  async restore(
    entity: Entity,
    id: string,
  ): Promise<{ row: Row; cascaded: Record<string, number> }> {
    const row = await this.sql.row<Row>(
      `UPDATE ${entity.table}
          SET ${entity.restoreSet}, archive_root = NULL, version = version + 1, ${TOUCH}
        WHERE id = $1
       RETURNING ${selectList(entity)}`,
      [id],
    );
    if (!row) throw new Error(`cannot restore ${entity.name} ${id}: it vanished`);
    const cascaded: Record<string, number> = {};
    for (const child of descendantEntities(entity.name)) {
      const restored = await this.sql.rows<{ id: string }>(
        `UPDATE ${child.table}
            SET ${child.restoreSet}, archive_root = NULL, version = version + 1, ${TOUCH}
          WHERE archive_root = $1
         RETURNING id`,
        [id],
      );
      if (restored.length > 0) cascaded[child.plural] = restored.length;
    }
    return { row, cascaded };
  }

  /** How many records of each kind keep this one from being deleted (kinds with none left out). */
  async dependents(entity: Entity, id: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const relation of entity.dependents) {
      const dependent = ENTITIES[relation.entity];
      const found = await this.sql.row<{ count: string }>(
        `SELECT count(*) AS count FROM ${dependent.table} WHERE ${relation.column} = $1`,
        [id],
      );
      const count = Number(found?.count ?? 0);
      if (count > 0) counts[dependent.plural] = count;
    }
    return counts;
  }

  async delete(entity: Entity, id: string): Promise<void> {
    await this.sql.rows(`DELETE FROM ${entity.table} WHERE id = $1 RETURNING id`, [id]);
  }
}
