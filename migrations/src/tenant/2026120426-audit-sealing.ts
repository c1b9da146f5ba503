import type { MigrationContext } from '../migration.js';
import { quoteIdent } from '../identifiers.js';
import { tenantRoleName } from '../roles.js';
import { appendFunction, checkStatements, CONTENT_CHECKS } from './2026120425-audit-fast-append.js';
import { AUDIT_APPEND_SIGNATURE, TENANT_ID_COLUMN } from './conventions.js';

const APPEND_SIGNATURE = AUDIT_APPEND_SIGNATURE;

/** The tenant's role, the one writer of its records (the application role acts as it). */
function writerRole(roles: MigrationContext['roles'], schema: string): string {
  return quoteIdent(tenantRoleName(roles, schema.slice('tenant_'.length)));
}

/**
 * Records are chained after their commit instead of inside it. The chain trigger's work (lock
 * the tenant's chain row, move it, hash) was half of what a record added to an audited
 * mutation; the mutation now only stores the record, and sealing chains it soon after.
 *
 * - `audit_pending` holds records that are committed but not yet chained. It has no index, no
 *   trigger and no CHECK constraint, so storing a record costs one heap row. Only the owner
 *   writes it, through the two definer functions below; no other role has a privilege on it.
 * - audit_append(...) (same arguments as before, so running services keep calling it) now
 *   tests the record as the chain trigger does, with the same errors, refuses an infinite
 *   time (which the chain cannot hash), and stores it in audit_pending. Only the tenant's
 *   role may call it, as only it may insert into audit_events. A record that would not pass
 *   the trigger never waits there, so sealing never stalls on one.
 * - audit_seal() moves the transaction's tenant's pending records into audit_events, oldest
 *   first, in one statement. The chain trigger of audit_events chains each of them exactly as
 *   it chains a direct insert; a record keeps the id it was given when it was stored, and its
 *   time too, unless a record stored later, with a later time, was sealed first (its
 *   transaction committed first): the chain's times never run backwards, so the record then
 *   takes the time of the head, as a direct insert with an earlier time does.
 *   Sealers of one tenant take turns on the tenant's chain row before they read audit_pending,
 *   so each record is moved once and the order of the chain is the order of the moves.
 * - Nothing else changes: audit_events, its triggers, the hash, verify and retention. A direct
 *   insert into audit_events (the application role keeps the privilege) is chained at once.
 *
 * What this costs in guarantees: a committed record is in the chain only once a sealer has run.
 * The services seal shortly after each commit and before every read of the log (the query API,
 * export and verify), so a reader never misses one; until then, privileges refuse every role
 * but the owner any change to it.
 */
export async function up({ sql, schema, roles }: MigrationContext): Promise<void> {
  const table = `${quoteIdent(schema)}.audit_pending`;
  const where = `SCHEMA = '${schema}', TABLE = 'audit_events'`;
  await sql(`
    CREATE TABLE audit_pending (
      ${TENANT_ID_COLUMN},
      position bigint GENERATED ALWAYS AS IDENTITY,
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      actor_user_id text,
      actor_roles text[] NOT NULL DEFAULT '{}',
      actor_system text,
      client_address text,
      user_agent text,
      request_id text,
      action text NOT NULL,
      resource_type text,
      resource_id text,
      outcome text NOT NULL,
      changes jsonb,
      details jsonb
    );

    -- A definer function: it must not resolve names through the caller's search path, so every
    -- table is written with its schema (functions and operators come from pg_catalog, which is
    -- searched first). No SET search_path clause, which would cost a configuration change on
    -- every call.
    CREATE OR REPLACE FUNCTION audit_append(
        occurred_at timestamptz, actor_user_id text, actor_roles text[], actor_system text,
        client_address text, user_agent text, request_id text, action text,
        resource_type text, resource_id text, outcome text, changes jsonb, details jsonb)
      RETURNS void
      LANGUAGE plpgsql SECURITY DEFINER
      AS $$
      BEGIN
        -- The chain cannot hash an infinite time (-infinity reaches the hash when the chain has
        -- no time yet); such a record would stop every seal of the tenant after its commit.
        IF $1 IS NOT NULL AND NOT isfinite($1) THEN
          RAISE EXCEPTION 'the time of an audit record must be finite, not %', $1
            USING ERRCODE = 'datetime_field_overflow', ${where};
        END IF;
${checkStatements(CONTENT_CHECKS, 'audit_append.', where)}
        INSERT INTO ${table} (occurred_at, actor_user_id, actor_roles, actor_system,
          client_address, user_agent, request_id, action, resource_type, resource_id, outcome,
          changes, details)
        VALUES (coalesce($1, clock_timestamp()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
          $13);
      END
      $$;

    CREATE FUNCTION audit_seal() RETURNS bigint
      LANGUAGE plpgsql SECURITY DEFINER
      SET search_path = ${quoteIdent(schema)}, pg_catalog
      AS $$
      DECLARE
        sealed bigint;
      BEGIN
        -- Nothing pending (every read of the log asks first): no lock, no transaction id.
        IF NOT EXISTS (SELECT 1 FROM audit_pending) THEN
          RETURN 0;
        END IF;
        PERFORM 1 FROM audit_chain WHERE tenant_id = platform.current_tenant_id() FOR UPDATE;
        WITH moved AS (DELETE FROM audit_pending RETURNING *)
        INSERT INTO audit_events (id, occurred_at, actor_user_id, actor_roles, actor_system,
          client_address, user_agent, request_id, action, resource_type, resource_id, outcome,
          changes, details)
        SELECT id, occurred_at, actor_user_id, actor_roles, actor_system, client_address,
          user_agent, request_id, action, resource_type, resource_id, outcome, changes, details
          FROM moved ORDER BY position;
        GET DIAGNOSTICS sealed = ROW_COUNT;
        RETURN sealed;
      END
      $$;

    -- A definer function writes with the owner's rights, so it may not be everyone's, as a
    -- function is by default: only the role that may INSERT into audit_events calls it (the
    -- retention role, say, reads and deletes records but never wrote one).
    REVOKE EXECUTE ON FUNCTION ${APPEND_SIGNATURE} FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION ${APPEND_SIGNATURE} TO ${writerRole(roles, schema)};
  `);
}

/**
 * Seals what is pending (as the schema's tenant: the owner, too, sees only the transaction's
 * tenant), refuses to go on if anything is left, and puts back audit_append of
 * 2026120425-audit-fast-append. audit_pending is locked first, against everyone, as the DROP
 * would lock it:
 * - a record stored by a transaction still open when sealing began would otherwise commit after
 *   the check and be dropped with the table. Such a transaction is waited for and its record
 *   sealed; one that calls audit_append meanwhile waits, then fails, so its change does not
 *   commit either;
 * - a seal by someone else reads audit_pending before it waits for the chain row, which this
 *   one's seal holds: had the DROP then waited for that read, each would wait for the other.
 *   Such a seal now waits for this transaction, and finds neither the table nor the function.
 */
export async function down({ sql, schema }: MigrationContext): Promise<void> {
  await sql(
    `SELECT set_config('app.tenant_id', id::text, true) FROM platform.tenants
      WHERE schema_name = $1`,
    [schema],
  );
  await sql(`
    LOCK TABLE audit_pending IN ACCESS EXCLUSIVE MODE;
    DO $$
    BEGIN
      IF platform.current_tenant_id() IS NULL THEN
        RAISE EXCEPTION 'cannot seal the pending audit records of %: no tenant has this schema',
          current_schema();
      END IF;
      PERFORM audit_seal();
      IF EXISTS (SELECT 1 FROM audit_pending) THEN
        RAISE EXCEPTION 'audit_pending of % still holds records after sealing', current_schema();
      END IF;
    END
    $$;
    DROP FUNCTION audit_seal();
    DROP TABLE audit_pending;
    -- Dropped and created again, so that it also gets back the default privileges.
    DROP FUNCTION ${APPEND_SIGNATURE};
    ${appendFunction(schema)}
  `);
}
