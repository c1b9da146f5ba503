import type { Reply } from '@vextrus/shared';
import { DatabaseError, ForeignKeyConstraintError, UniqueConstraintError } from 'sequelize';
import { changesOf, recordAudit } from '../audit.js';
import { claimKey, fingerprint, storeReply } from '../data/idempotency.js';
import { Records, type Row } from '../data/records.js';
import type { Sql } from '../data/sql.js';
import { errors } from '../errors.js';
import { validationProblem } from '../http/validation.js';
import { decodeCursor, cursorValueFits } from './cursor.js';
import { assertPlacement, lockTree } from './divisions.js';
import { ENTITIES, apiName, type Entity } from './entities.js';

/** What every operation works with: the tenant transaction's SQL and the caller. */
export interface OperationContext {
  sql: Sql;
  userId: string;
  /** X-Project-ID and X-Site-ID, when given. */
  projectId?: string;
  siteId?: string;
}

/** The entity tag of a record: its version, as a strong ETag. */
export function etag(row: Row): string {
  return `"${row.version}"`;
}

/** The version named by an If-Match header (already validated as `"<digits>"`). */
export function versionOf(ifMatch: string): number {
  return Number(ifMatch.slice(1, -1));
}

function location(entity: Entity, row: Row): string {
  return `/org/${entity.plural}/${row.id}`;
}

function notFound(entity: Entity, id: string): Error {
  return errors.NOT_FOUND(`No ${entity.name} ${id} exists`);
}

function checkVersion(row: Row, ifMatch: string | undefined): void {
  if (ifMatch !== undefined && versionOf(ifMatch) !== row.version) {
    throw errors.PRECONDITION_FAILED(
      `The ${row.id} record is at version ${row.version}, not ${versionOf(ifMatch)}; ` +
        'read it again and reapply your change',
      {},
      { headers: { ETag: etag(row) } },
    );
  }
}

/** Turns database refusals that a client can cause into problems with stable codes. */
export function translateDatabaseError(err: unknown, deleting = false): unknown {
  if (err instanceof UniqueConstraintError) {
    return errors.CODE_TAKEN('Another record of the same parent already uses this code', {
      field: 'code',
    });
  }
  if (err instanceof ForeignKeyConstraintError) {
    return deleting
      ? errors.DEPENDENTS_EXIST('Records were added beneath this one meanwhile; list them first')
      : errors.NOT_FOUND('A record this request refers to no longer exists');
  }
  if (err instanceof DatabaseError) {
    const code = (err.parent as { code?: string } | undefined)?.code ?? '';
    if (code === '23514' || code.startsWith('22')) {
      return errors.VALIDATION_FAILED('The values are inconsistent with the stored record', {
        errors: [],
      });
    }
  }
  return err;
}

/**
 * The X-Project-ID / X-Site-ID scope: column and id pairs that projects and sites must match to
 * be seen at all, in lists and by id. Organizations, branches and divisions are above projects
 * and are not narrowed.
 */
function contextScope(context: OperationContext, entity: Entity): [string, string][] {
  const scope: [string, string][] = [];
  if (entity.name === 'project' && context.projectId) scope.push(['id', context.projectId]);
  if (entity.name === 'site') {
    if (context.projectId) scope.push(['project_id', context.projectId]);
    if (context.siteId) scope.push(['id', context.siteId]);
  }
  return scope;
}

/** The records of the request's transaction, narrowed to its context. */
function recordsFor(context: OperationContext): Records {
  return new Records(context.sql, (entity) => contextScope(context, entity));
}

// Reading

/**
 * Checks X-Project-ID and X-Site-ID: each must name a record the caller can see, else 404.
 * Returns the context the operation runs in: a site narrows to its project as well, so that
 * X-Site-ID alone does not leave the other projects (and the sites added beneath them) in view.
 */
export async function checkContext<T extends OperationContext>(context: T): Promise<T> {
  const records = recordsFor(context);
  if (context.projectId !== undefined) {
    const project = await records.find(ENTITIES.project, context.projectId);
    if (!project) throw notFound(ENTITIES.project, context.projectId);
  }
  if (context.siteId !== undefined) {
    // Found through the scope: a site of another project than X-Project-ID is not found.
    const site = await records.find(ENTITIES.site, context.siteId);
    if (!site) throw notFound(ENTITIES.site, context.siteId);
    if (context.projectId === undefined && typeof site.projectId === 'string') {
      return { ...context, projectId: site.projectId };
    }
  }
  return context;
}

export async function getRecord(
  context: OperationContext,
  entity: Entity,
  id: string,
): Promise<Reply> {
  const row = await recordsFor(context).find(entity, id);
  if (!row) throw notFound(entity, id);
  return { body: row, headers: { ETag: etag(row) } };
}

export interface ListInput {
  limit?: number;
  cursor?: string;
  sort?: string;
  status?: string;
  code?: string;
  name?: string;
  [idFilter: string]: unknown;
}

export async function listRecords(
  context: OperationContext,
  entity: Entity,
  input: ListInput,
  parentId?: string,
): Promise<Reply> {
  const records = recordsFor(context);
  if (parentId !== undefined && entity.parent) {
    const parent = ENTITIES[entity.parent.entity];
    if (!(await records.find(parent, parentId))) throw notFound(parent, parentId);
  }
  const sortText = input.sort ?? 'code';
  const descending = sortText.startsWith('-');
  const sort = descending ? sortText.slice(1) : sortText;
  const after = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
  const key = entity.sorts[sort];
  if (
    input.cursor !== undefined &&
    (!after || after.sort !== sortText || !key || !cursorValueFits(key, after.value))
  ) {
    throw errors.VALIDATION_FAILED('The cursor does not belong to this list and sort', {
      errors: [
        {
          in: 'query',
          field: 'cursor',
          code: 'invalid_cursor',
          message: 'is not a cursor of this list; pass nextCursor of a page with the same sort',
        },
      ],
    });
  }
  // The scope narrows the list further; it never replaces the parent or a filter, so a path or
  // filter naming another project than X-Project-ID lists nothing.
  const equals: [string, string][] = [];
  for (const [filter, column] of Object.entries(entity.idFilters)) {
    const value = input[filter];
    if (typeof value === 'string') equals.push([column, value]);
  }
  if (parentId !== undefined && entity.parent) equals.push([entity.parent.column, parentId]);
  const page = await records.list(entity, {
    sort,
    descending,
    limit: input.limit ?? 25,
    after,
    status: input.status,
    code: input.code,
    name: input.name,
    equals: [...equals, ...contextScope(context, entity)],
  });
  return { body: page };
}

// Writing

/**
 * Locks the records a write relies on (FOR SHARE, so they cannot be archived or deleted until
 * this transaction ends) and checks that they exist, are active and belong to the same
 * organization.
 */
async function lockReferences(
  records: Records,
  entity: Entity,
  values: Record<string, unknown>,
  organizationId: string | undefined,
): Promise<void> {
  for (const [field, target] of Object.entries(entity.references)) {
    const id = values[field];
    if (typeof id !== 'string') continue;
    const referenced = ENTITIES[target];
    const row = await records.find(referenced, id, 'share');
    if (!row || (organizationId !== undefined && row.organizationId !== organizationId)) {
      throw errors.NOT_FOUND(`No ${referenced.name} ${id} exists in this organization`, { field });
    }
    if (row.status === 'archived') {
      throw errors.PARENT_ARCHIVED(`The ${referenced.name} ${id} is archived`, { field });
    }
  }
}

async function lockParent(records: Records, entity: Entity, parentId: string): Promise<Row> {
  const parentEntity = ENTITIES[entity.parent?.entity ?? 'organization'];
  const parent = await records.find(parentEntity, parentId, 'share');
  if (!parent) throw notFound(parentEntity, parentId);
  if (parent.status === 'archived') {
    throw errors.PARENT_ARCHIVED(`The ${parentEntity.name} ${parentId} is archived`);
  }
  return parent;
}

/** The organization a record belongs to (organizations are their own). */
function organizationOf(entity: Entity, row: Row): string | undefined {
  if (entity.name === 'organization') return row.id;
  return typeof row.organizationId === 'string' ? row.organizationId : undefined;
}

export interface CreateInput {
  parentId?: string;
  values: Record<string, unknown>;
  idempotencyKey?: string;
}

export async function createRecord(
  context: OperationContext,
  entity: Entity,
  input: CreateInput,
): Promise<Reply> {
  const { sql } = context;
  const records = recordsFor(context);
  if (input.idempotencyKey !== undefined) {
    // The context headers are part of the request: a retry under another X-Project-ID or
    // X-Site-ID must not replay a record that this context cannot see. They are added only when
    // given, so that keys stored without them keep their fingerprints.
    const scope = [context.projectId, context.siteId];
    const print = fingerprint([
      entity.name,
      input.parentId ?? null,
      context.userId,
      input.values,
      ...(scope.some((id) => id !== undefined) ? [scope.map((id) => id ?? null)] : []),
    ]);
    const replay = await claimKey(sql, input.idempotencyKey, print);
    if (replay) return replay;
  }

  if (entity.name === 'division' && input.parentId) await lockTree(sql, input.parentId);
  const values = { ...input.values };
  let organizationId: string | undefined;
  if (entity.parent && input.parentId !== undefined) {
    const parent = await lockParent(records, entity, input.parentId);
    values[apiName(entity, entity.parent.column)] = input.parentId;
    organizationId = organizationOf(ENTITIES[entity.parent.entity], parent);
  }
  await lockReferences(records, entity, values, organizationId);
  if (entity.name === 'division' && typeof values.parentId === 'string') {
    await assertPlacement(sql, undefined, values.parentId);
  }

  const row = await records.insert(entity, values);
  await recordAudit({
    action: `${entity.name}.created`,
    outcome: 'success',
    resourceType: entity.name,
    resourceId: row.id,
    changes: changesOf({}, row),
  });
  const reply: Reply = {
    status: 201,
    body: row,
    headers: { ETag: etag(row), Location: location(entity, row) },
  };
  if (input.idempotencyKey !== undefined) await storeReply(sql, input.idempotencyKey, reply);
  return reply;
}

/**
 * Checks the rules that span fields (dates in order, coordinates in pairs) on the record as the
 * change would leave it, so that a PATCH of one field is judged with the stored others.
 */
function assertConsistent(entity: Entity, before: Row, changes: Record<string, unknown>): void {
  const shape = (entity.create as { shape?: Record<string, unknown> }).shape ?? {};
  const merged: Record<string, unknown> = {};
  for (const name of Object.keys(shape)) {
    const value = name in changes ? changes[name] : before[name];
    if (value !== undefined) merged[name] = value;
  }
  const result = entity.create.safeParse(merged);
  if (!result.success) throw validationProblem('body', result.error);
}

export async function updateRecord(
  context: OperationContext,
  entity: Entity,
  id: string,
  ifMatch: string | undefined,
  changes: Record<string, unknown>,
): Promise<Reply> {
  if (ifMatch === undefined) {
    throw errors.PRECONDITION_REQUIRED(
      'Send If-Match with the ETag you read, so that no other change is overwritten',
    );
  }
  const { sql } = context;
  const records = recordsFor(context);
  const before = await records.find(entity, id);
  if (!before) throw notFound(entity, id);
  const organizationId = organizationOf(entity, before);
  const moving = entity.name === 'division' && typeof changes.parentId === 'string';
  if (moving && organizationId) await lockTree(sql, organizationId);
  checkVersion(before, ifMatch);
  if (before.status === 'archived') {
    throw errors.ARCHIVED(`The ${entity.name} ${id} is archived; restore it before changing it`);
  }
  assertConsistent(entity, before, changes);
  await lockReferences(records, entity, changes, organizationId);
  // The stored id, not the path's: the ancestry it is looked for in holds ids as stored.
  if (moving) await assertPlacement(sql, before.id, changes.parentId as string);

  const after = await records.update(entity, id, versionOf(ifMatch), changes);
  if (!after) {
    const current = await records.find(entity, id);
    if (!current) throw notFound(entity, id);
    checkVersion(current, ifMatch);
    throw new Error(`cannot update ${entity.name} ${id}: the version matched but no row changed`);
  }
  await recordAudit({
    action: `${entity.name}.updated`,
    outcome: 'success',
    resourceType: entity.name,
    resourceId: id,
    changes: changesOf(before, after),
  });
  return { body: after, headers: { ETag: etag(after) } };
}

export async function archiveRecord(
  context: OperationContext,
  entity: Entity,
  id: string,
  ifMatch: string | undefined,
): Promise<Reply> {
  const records = recordsFor(context);
  if (entity.name === 'organization' || entity.name === 'division') {
    // Archiving changes a division tree, so it takes the tree's turn first, as moves and creates
    // do: a move locks its new parent and then the moved division, while the cascade locks the
    // tree's divisions in table order, and the two would otherwise deadlock.
    const seen = await records.find(entity, id);
    const organizationId = seen && organizationOf(entity, seen);
    if (organizationId) await lockTree(context.sql, organizationId);
  }
  const before = await records.find(entity, id, 'update');
  if (!before) throw notFound(entity, id);
  checkVersion(before, ifMatch);
  if (before.status === 'archived') {
    throw errors.ALREADY_ARCHIVED(`The ${entity.name} ${id} is already archived`);
  }
  const { row, cascaded } = await records.archive(entity, id);
  await recordAudit({
    action: `${entity.name}.archived`,
    outcome: 'success',
    resourceType: entity.name,
    resourceId: id,
    changes: changesOf(before, row),
    details: { cascaded },
  });
  return { body: { item: row, cascaded }, headers: { ETag: etag(row) } };
}

export async function restoreRecord(
  context: OperationContext,
  entity: Entity,
  id: string,
  ifMatch: string | undefined,
): Promise<Reply> {
  const records = recordsFor(context);
  const seen = await records.find(entity, id);
  if (!seen) throw notFound(entity, id);
  // Owners are locked before the record, in the order an archive of the owner takes them.
  for (const owner of entity.owners) {
    const ownerId = seen[apiName(entity, owner.column)];
    if (typeof ownerId !== 'string') continue;
    const ownerEntity = ENTITIES[owner.entity];
    const ownerRow = await records.find(ownerEntity, ownerId, 'share');
    if (ownerRow?.status === 'archived') {
      throw errors.PARENT_ARCHIVED(
        `The ${ownerEntity.name} ${ownerId} is archived; restore it first`,
      );
    }
  }
  const before = await records.find(entity, id, 'update');
  if (!before) throw notFound(entity, id);
  checkVersion(before, ifMatch);
  if (before.status !== 'archived') {
    throw errors.NOT_ARCHIVED(`The ${entity.name} ${id} is not archived`);
  }
  const { row, cascaded } = await records.restore(entity, id);
  await recordAudit({
    action: `${entity.name}.restored`,
    outcome: 'success',
    resourceType: entity.name,
    resourceId: id,
    changes: changesOf(before, row),
    details: { cascaded },
  });
  return { body: { item: row, cascaded }, headers: { ETag: etag(row) } };
}

export async function deleteRecord(
  context: OperationContext,
  entity: Entity,
  id: string,
  ifMatch: string | undefined,
): Promise<Reply> {
  const records = recordsFor(context);
  const before = await records.find(entity, id, 'update');
  if (!before) throw notFound(entity, id);
  checkVersion(before, ifMatch);
  const dependents = await records.dependents(entity, id);
  if (Object.keys(dependents).length > 0) {
    const named = Object.entries(dependents).map(([kind, count]) => `${count} ${kind}`);
    throw errors.DEPENDENTS_EXIST(
      `The ${entity.name} ${id} still has ${named.join(', ')}; delete or move them first`,
      { dependents },
    );
  }
  await records.delete(entity, id);
  await recordAudit({
    action: `${entity.name}.deleted`,
    outcome: 'success',
    resourceType: entity.name,
    resourceId: id,
    changes: changesOf(before, {}),
  });
  return { status: 204 };
}
