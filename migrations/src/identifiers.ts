import { MigrationError, MigrationErrorCode } from './errors.js';

/**
 * A tenant slug is a DNS label (lowercase letters, digits and inner hyphens) that starts with a
 * letter. The length bound keeps `tenant_<slug>` and the tenant role name within PostgreSQL's
 * 63-byte identifier limit, whatever role prefix is configured within reason.
 */
export const SLUG_MAX_LENGTH = 40;
const SLUG_PATTERN = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;
const IDENTIFIER_MAX_BYTES = 63;
const ROLE_NAME_PATTERN = /^[a-z_][a-z0-9_]*$/;

/** Throws a coded error saying what is wrong with the slug, or returns it unchanged. */
export function validateSlug(slug: string): string {
  const problem =
    typeof slug !== 'string' || slug.length === 0
      ? 'it is empty'
      : slug.length > SLUG_MAX_LENGTH
        ? `it is longer than ${SLUG_MAX_LENGTH} characters`
        : !SLUG_PATTERN.test(slug)
          ? 'use lowercase letters, digits and inner hyphens, starting with a letter'
          : slug.includes('--')
            ? 'it contains two hyphens in a row'
            : undefined;
  if (problem) {
    const shown = JSON.stringify(String(slug).slice(0, SLUG_MAX_LENGTH + 10));
    throw new MigrationError(
      MigrationErrorCode.InvalidSlug,
      `invalid tenant slug ${shown}: ${problem}`,
    );
  }
  return slug;
}

/** The schema that holds one tenant's tables: `tenant_<slug>` with hyphens as underscores. */
export function tenantSchema(slug: string): string {
  return `tenant_${validateSlug(slug).replaceAll('-', '_')}`;
}

/** Checks a configured role name: lowercase, unquoted-identifier safe, at most 63 bytes. */
export function validateRoleName(name: string, what: string): string {
  if (!ROLE_NAME_PATTERN.test(name) || Buffer.byteLength(name) > IDENTIFIER_MAX_BYTES) {
    throw new MigrationError(
      MigrationErrorCode.InvalidRoleName,
      `invalid ${what} role name ${JSON.stringify(name)}: use at most 63 lowercase letters, ` +
        'digits and underscores, not starting with a digit',
    );
  }
  return name;
}

/** Quotes an identifier for SQL text: `"name"`, with embedded quotes doubled. */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('identifier contains a NUL character');
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Quotes a string literal for SQL text, for the few statements (CREATE ROLE ... PASSWORD) that
 * take no bind parameters. Relies on standard_conforming_strings, which PostgreSQL has had on by
 * default since 9.1 and which Sequelize checks on every new connection.
 */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('literal contains a NUL character');
  return `'${value.replaceAll("'", "''")}'`;
}
