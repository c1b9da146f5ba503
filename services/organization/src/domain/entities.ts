import { z } from 'zod';
import * as f from './fields.js';

/** The five kinds of record the service keeps. */
export type EntityName = 'organization' | 'branch' | 'division' | 'project' | 'site';

/** One attribute as the API shows it, and the SQL that reads it. */
export interface Field {
  /** The name in JSON. */
  api: string;
  /** The column; also the SQL that reads it unless `read` says otherwise. */
  column: string;
  /** SQL that reads the value (a constant of this module, never client text). */
  read?: string;
  /** How a written value is cast in SQL. */
  cast?: 'jsonb' | 'date';
}

/** A sort key clients may name, the column behind it and its SQL type (for the cursor). */
export interface SortKey {
  column: string;
  type: 'text' | 'timestamptz';
}

/** A table whose rows point at this entity through `column`. */
export interface Relation {
  entity: EntityName;
  column: string;
}

export interface Entity {
  name: EntityName;
  plural: string;
  table: string;
  fields: readonly Field[];
  /** The record this one belongs to, given when creating it beneath its parent's path. */
  parent?: Relation;
  /** Records archived with this one (and restored with it). */
  children: readonly Relation[];
  /** Records that keep this one from being deleted. */
  dependents: readonly Relation[];
  /** Parents that must be active before this record may be created or restored. */
  owners: readonly Relation[];
  /** Other references in the body: field name → entity, checked within the same organization. */
  references: Readonly<Record<string, EntityName>>;
  /** Columns the `name` filter searches. */
  nameColumns: readonly string[];
  sorts: Readonly<Record<string, SortKey>>;
  /** Query filters that compare an id column. */
  idFilters: Readonly<Record<string, string>>;
  statuses: readonly [string, ...string[]];
  /** SET list that archives a row, and the one that restores it. */
  archiveSet: string;
  restoreSet: string;
  create: z.ZodType<Record<string, unknown>>;
  update: z.ZodType<Record<string, unknown>>;
  response: z.ZodType;
}

/**
 * SQL that reads a timestamp as the ISO 8601 text the API shows (UTC, milliseconds), so rows need
 * no Date parsing and formatting on the way out.
 */
function isoTime(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

const common: readonly Field[] = [
  { api: 'id', column: 'id' },
  { api: 'code', column: 'code' },
  { api: 'status', column: 'status' },
  { api: 'version', column: 'version' },
  { api: 'createdAt', column: 'created_at', read: isoTime('created_at') },
  { api: 'updatedAt', column: 'updated_at', read: isoTime('updated_at') },
];

const commonSorts: Record<string, SortKey> = {
  code: { column: 'code', type: 'text' },
  createdAt: { column: 'created_at', type: 'timestamptz' },
  updatedAt: { column: 'updated_at', type: 'timestamptz' },
};

const activeArchived = ['active', 'archived'] as const;
const simpleArchive = `status = 'archived'`;
const simpleRestore = `status = 'active'`;

const commonResponse = {
  id: f.id,
  code: f.code,
  version: f.version,
  createdAt: f.timestamp,
  updatedAt: f.timestamp,
};

/** At least one field, for PATCH bodies. */
function nonEmpty<T extends z.ZodObject>(schema: T) {
  return schema.refine((value) => Object.keys(value).length > 0, {
    error: 'name at least one field to change',
  });
}

// Organizations

const organizationWritable = {
  code: f.code,
  legalName: f.name,
  displayName: f.name,
  registrationId: f.identifier.nullable().optional(),
  taxId: f.identifier.nullable().optional(),
  country: f.country,
  currency: f.currency,
  timeZone: f.timeZone,
  fiscalYearStartMonth: z.int().min(1).max(12).optional(),
  address: f.address.optional(),
};

const organization: Entity = {
  name: 'organization',
  plural: 'organizations',
  table: 'organizations',
  fields: [
    ...common,
    { api: 'legalName', column: 'legal_name' },
    { api: 'displayName', column: 'display_name' },
    { api: 'registrationId', column: 'registration_id' },
    { api: 'taxId', column: 'tax_id' },
    { api: 'country', column: 'country' },
    { api: 'currency', column: 'currency' },
    { api: 'timeZone', column: 'time_zone' },
    { api: 'fiscalYearStartMonth', column: 'fiscal_year_start_month' },
    { api: 'address', column: 'address', cast: 'jsonb' },
  ],
  children: [
    { entity: 'branch', column: 'organization_id' },
    { entity: 'division', column: 'organization_id' },
    { entity: 'project', column: 'organization_id' },
  ],
  dependents: [
    { entity: 'branch', column: 'organization_id' },
    { entity: 'division', column: 'organization_id' },
    { entity: 'project', column: 'organization_id' },
  ],
  owners: [],
  references: {},
  nameColumns: ['display_name', 'legal_name'],
  sorts: { ...commonSorts, name: { column: 'display_name', type: 'text' } },
  idFilters: {},
  statuses: activeArchived,
  archiveSet: simpleArchive,
  restoreSet: simpleRestore,
  create: z.strictObject(organizationWritable),
  update: nonEmpty(z.strictObject(organizationWritable).partial()),
  response: z.object({
    ...commonResponse,
    status: z.enum(activeArchived),
    legalName: z.string(),
    displayName: z.string(),
    registrationId: z.string().nullable(),
    taxId: z.string().nullable(),
    country: z.string(),
    currency: z.string(),
    timeZone: z.string(),
    fiscalYearStartMonth: z.int(),
    address: f.address,
  }),
};

// Branches

const branchWritable = {
  code: f.code,
  name: f.name,
  address: f.address.optional(),
  phone: f.phone.nullable().optional(),
};

const branch: Entity = {
  name: 'branch',
  plural: 'branches',
  table: 'branches',
  fields: [
    ...common,
    { api: 'organizationId', column: 'organization_id' },
    { api: 'name', column: 'name' },
    { api: 'address', column: 'address', cast: 'jsonb' },
    { api: 'phone', column: 'phone' },
  ],
  parent: { entity: 'organization', column: 'organization_id' },
  children: [],
  dependents: [
    { entity: 'division', column: 'branch_id' },
    { entity: 'project', column: 'branch_id' },
  ],
  owners: [{ entity: 'organization', column: 'organization_id' }],
  references: {},
  nameColumns: ['name'],
  sorts: { ...commonSorts, name: { column: 'name', type: 'text' } },
  idFilters: { organizationId: 'organization_id' },
  statuses: activeArchived,
  archiveSet: simpleArchive,
  restoreSet: simpleRestore,
  create: z.strictObject(branchWritable),
  update: nonEmpty(z.strictObject(branchWritable).partial()),
  response: z.object({
    ...commonResponse,
    status: z.enum(activeArchived),
    organizationId: f.id,
    name: z.string(),
    address: f.address,
    phone: z.string().nullable(),
  }),
};

// Divisions

/** How deep the division tree may grow: a root division is at depth 1. */
export const MAX_DIVISION_DEPTH = 8;

const divisionWritable = {
  code: f.code,
  name: f.name,
  branchId: f.id.nullable().optional(),
  parentId: f.id.nullable().optional(),
};

const division: Entity = {
  name: 'division',
  plural: 'divisions',
  table: 'divisions',
  fields: [
    ...common,
    { api: 'organizationId', column: 'organization_id' },
    { api: 'branchId', column: 'branch_id' },
    { api: 'parentId', column: 'parent_id' },
    { api: 'name', column: 'name' },
  ],
  parent: { entity: 'organization', column: 'organization_id' },
  children: [{ entity: 'division', column: 'parent_id' }],
  dependents: [{ entity: 'division', column: 'parent_id' }],
  owners: [
    { entity: 'organization', column: 'organization_id' },
    { entity: 'division', column: 'parent_id' },
  ],
  references: { branchId: 'branch', parentId: 'division' },
  nameColumns: ['name'],
  sorts: { ...commonSorts, name: { column: 'name', type: 'text' } },
  idFilters: { organizationId: 'organization_id', branchId: 'branch_id', parentId: 'parent_id' },
  statuses: activeArchived,
  archiveSet: simpleArchive,
  restoreSet: simpleRestore,
  create: z.strictObject(divisionWritable),
  update: nonEmpty(z.strictObject(divisionWritable).partial()),
  response: z.object({
    ...commonResponse,
    status: z.enum(activeArchived),
    organizationId: f.id,
    branchId: f.id.nullable(),
    parentId: f.id.nullable(),
    name: z.string(),
  }),
};

// Projects

export const PROJECT_STATUSES = ['planned', 'active', 'on_hold', 'closed'] as const;

const projectWritable = {
  code: f.code,
  name: f.name,
  status: z.enum(PROJECT_STATUSES).optional(),
  startDate: f.date.nullable().optional(),
  endDate: f.date.nullable().optional(),
  branchId: f.id.nullable().optional(),
};

const datesError = { error: 'endDate must not be before startDate', path: ['endDate'] };

const project: Entity = {
  name: 'project',
  plural: 'projects',
  table: 'projects',
  fields: [
    ...common,
    { api: 'organizationId', column: 'organization_id' },
    { api: 'branchId', column: 'branch_id' },
    { api: 'name', column: 'name' },
    { api: 'startDate', column: 'start_date', read: 'start_date::text', cast: 'date' },
    { api: 'endDate', column: 'end_date', read: 'end_date::text', cast: 'date' },
  ],
  parent: { entity: 'organization', column: 'organization_id' },
  children: [{ entity: 'site', column: 'project_id' }],
  dependents: [{ entity: 'site', column: 'project_id' }],
  owners: [{ entity: 'organization', column: 'organization_id' }],
  references: { branchId: 'branch' },
  nameColumns: ['name'],
  sorts: { ...commonSorts, name: { column: 'name', type: 'text' } },
  idFilters: { organizationId: 'organization_id', branchId: 'branch_id' },
  statuses: [...PROJECT_STATUSES, 'archived'],
  archiveSet: `status_before_archive = status, status = 'archived'`,
  restoreSet: `status = status_before_archive, status_before_archive = NULL`,
  create: z.strictObject(projectWritable).refine(f.datesInOrder, datesError),
  update: nonEmpty(z.strictObject(projectWritable).partial()).refine(f.datesInOrder, datesError),
  response: z.object({
    ...commonResponse,
    status: z.enum([...PROJECT_STATUSES, 'archived']),
    organizationId: f.id,
    branchId: f.id.nullable(),
    name: z.string(),
    startDate: f.date.nullable(),
    endDate: f.date.nullable(),
  }),
};

// Sites

const siteWritable = {
  code: f.code,
  name: f.name,
  address: f.address.optional(),
  latitude: f.latitude.nullable().optional(),
  longitude: f.longitude.nullable().optional(),
};

const coordinatesError = {
  error: 'give latitude and longitude together',
  path: ['longitude'],
};

function coordinatesPaired(value: { latitude?: number | null; longitude?: number | null }) {
  return (value.latitude === undefined) === (value.longitude === undefined);
}

const site: Entity = {
  name: 'site',
  plural: 'sites',
  table: 'sites',
  fields: [
    ...common,
    { api: 'projectId', column: 'project_id' },
    { api: 'name', column: 'name' },
    { api: 'address', column: 'address', cast: 'jsonb' },
    { api: 'latitude', column: 'latitude' },
    { api: 'longitude', column: 'longitude' },
  ],
  parent: { entity: 'project', column: 'project_id' },
  children: [],
  dependents: [],
  owners: [{ entity: 'project', column: 'project_id' }],
  references: {},
  nameColumns: ['name'],
  sorts: { ...commonSorts, name: { column: 'name', type: 'text' } },
  idFilters: { projectId: 'project_id' },
  statuses: activeArchived,
  archiveSet: simpleArchive,
  restoreSet: simpleRestore,
  create: z
    .strictObject(siteWritable)
    .refine(coordinatesPaired, coordinatesError)
    .refine((v) => (v.latitude === null) === (v.longitude === null), coordinatesError),
  update: nonEmpty(z.strictObject(siteWritable).partial())
    .refine(coordinatesPaired, coordinatesError)
    .refine((v) => (v.latitude === null) === (v.longitude === null), coordinatesError),
  response: z.object({
    ...commonResponse,
    status: z.enum(activeArchived),
    projectId: f.id,
    name: z.string(),
    address: f.address,
    latitude: z.number().nullable(),
    longitude: z.number().nullable(),
  }),
};

export const ENTITIES: Readonly<Record<EntityName, Entity>> = {
  organization,
  branch,
  division,
  project,
  site,
};

/**
 * The field of a body or filter that names `relation`'s parent (organization_id →
 * organizationId).
 */
export function apiName(entity: Entity, column: string): string {
  const field = entity.fields.find((candidate) => candidate.column === column);
  if (!field) throw new Error(`entity ${entity.name} has no column ${column}`);
  return field.api;
}
