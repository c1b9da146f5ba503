import type { MigrationContext } from '../migration.js';
import { quoteIdent } from '../identifiers.js';

/**
 * The CHECK constraints of audit_events from 2026120406-audit-events, each as a condition on
 * the row `r` (`r.` for the trigger, empty for the table). Every condition is true or false,
 * never null, so testing it in PL/pgSQL refuses exactly what the constraint refused.
 */
const CHECKS: readonly (readonly [string, (r: string) => string])[] = [
  ['audit_events_sequence_check', (r) => `${r}sequence > 0`],
  [
    'audit_events_action_check',
    (r) => `${r}action ~ '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$' AND length(${r}action) <= 100`,
  ],
  ['audit_events_outcome_check', (r) => `${r}outcome IN ('success', 'failure', 'denied')`],
  [
    'audit_events_actor_check',
    (r) => `(${r}actor_user_id IS NULL OR length(${r}actor_user_id) BETWEEN 1 AND 128) AND
        (${r}actor_system IS NULL OR length(${r}actor_system) BETWEEN 1 AND 128)`,
  ],
  [
    'audit_events_request_check',
    (r) => `(${r}client_address IS NULL OR length(${r}client_address) <= 64) AND
        (${r}user_agent IS NULL OR length(${r}user_agent) <= 256) AND
        (${r}request_id IS NULL OR length(${r}request_id) <= 128)`,
  ],
  [
    'audit_events_resource_check',
    (r) => `(${r}resource_type IS NULL OR length(${r}resource_type) BETWEEN 1 AND 100) AND
        (${r}resource_id IS NULL OR length(${r}resource_id) BETWEEN 1 AND 200)`,
  ],
  [
    'audit_events_changes_check',
    (r) => `${r}changes IS NULL OR jsonb_typeof(${r}changes) = 'object'`,
  ],
  [
    'audit_events_details_check',
    (r) => `${r}details IS NULL OR jsonb_typeof(${r}details) = 'object'`,
  ],
  ['audit_events_hash_check', (r) => `length(${r}previous_hash) = 32 AND length(${r}hash) = 32`],
];

/** The checks of what the caller gives, tested before the chain moves. */
export const CONTENT_CHECKS = CHECKS.filter(([name]) => !/_(sequence|hash)_check$/.test(name));
/** The checks of what the chain gives. */
const CHAIN_CHECKS = CHECKS.filter(([name]) => /_(sequence|hash)_check$/.test(name));

/**
 * PL/pgSQL that raises what PostgreSQL raises for a violated CHECK constraint of the row whose
 * fields are `${row}<column>` (NEW in a trigger). The conditions are tested as one expression,
 * and one by one only to name the violated one. `where` names the table in the error (the
 * trigger's own outside a trigger).
 */
export function checkStatements(
  checks: typeof CHECKS,
  row = 'NEW.',
  where = 'SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME',
): string {
  const all = checks.map(([, condition]) => `(${condition(row)})`).join(' AND ');
  const each = checks.map(
    ([name, condition]) => `
          IF NOT (${condition(row)}) THEN
            RAISE EXCEPTION 'new row for relation "audit_events" violates check constraint "${name}"'
              USING ERRCODE = 'check_violation', CONSTRAINT = '${name}',
                    ${where};
          END IF;`,
  );
  return `
        IF NOT (${all}) THEN${each.join('')}
        END IF;`;
}

/**
 * audit_append(...) as this migration creates it: one INSERT into audit_events with the
 * caller's rights. 2026120426-audit-sealing puts it back on the way down.
 */
export function appendFunction(schema: string): string {
  return `CREATE OR REPLACE FUNCTION audit_append(
        occurred_at timestamptz, actor_user_id text, actor_roles text[], actor_system text,
        client_address text, user_agent text, request_id text, action text,
        resource_type text, resource_id text, outcome text, changes jsonb, details jsonb)
      RETURNS void
      LANGUAGE plpgsql SECURITY INVOKER
      AS $$
      BEGIN
        INSERT INTO ${quoteIdent(schema)}.audit_events (occurred_at, actor_user_id, actor_roles, actor_system,
          client_address, user_agent, request_id, action, resource_type, resource_id, outcome,
          changes, details)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13);
      END
      $$;`;
}

/**
 * A cheaper chain trigger, same chain. The insert trigger of 2026120406-audit-events cost more
 * than the insert itself; measured with EXPLAIN ANALYZE and timed inserts, the time went to:
 * - audit_event_hash(NEW): a SQL function with its own search_path is never inlined, so
 *   PostgreSQL parsed and planned its body again in every transaction. The same expression now sits
 *   in the trigger, whose statements PL/pgSQL plans once per session; audit_event_hash stays as
 *   it was for verify, and both give the same bytes (the audit tests verify chains written by
 *   this trigger);
 * - two statements on the chain row: SELECT ... FOR UPDATE (a row lock, itself written to the
 *   WAL), then UPDATE. One UPDATE ... RETURNING now takes the lock, moves the head and computes
 *   the hash from the old head: every SET expression sees the old row, and under concurrent
 *   writers PostgreSQL waits for the lock and evaluates them again on the newest row, so the
 *   chain stays a chain. The old head hash comes back through head_previous_hash (PostgreSQL 17
 *   has no RETURNING OLD), a column that nothing else reads;
 * - the guard trigger of audit_chain, a PL/pgSQL call with a catalog query on every move of the
 *   head, which let only the owner (whom the definer functions run as) through: it now guards
 *   inserts and deletes only. Updates were already refused to every other role by privileges
 *   (the tenant role may select and insert, the retention role select and delete, which
 *   provisioning verifies and repairs), and an owner's update passed the guard before too.
 * - the nine CHECK constraints of audit_events: PostgreSQL reads each one's stored expression
 *   and prepares it anew for every INSERT statement, which cost a third of the insert. The
 *   trigger, which runs on every insert whoever makes it, now tests the same conditions with
 *   PL/pgSQL's cached expressions and raises the same error (SQLSTATE 23514, the constraint's
 *   name); the constraints are dropped.
 * The record's time is read from the clock once instead of twice.
 *
 * audit_append(...) inserts one record into this schema's table with the caller's rights
 * (privileges and row-level security apply as to a plain INSERT, and the chain trigger fires); the audit facility sends
 * it with the transaction's COMMIT, as literals in one simple query, and PL/pgSQL keeps the
 * plan of its INSERT for the session, where a literal INSERT would be planned every time.
 */
export async function up({ sql, schema }: MigrationContext): Promise<void> {
  const path = `${quoteIdent(schema)}, pg_catalog`;
  const at = `greatest(least(coalesce(NEW.occurred_at, now_), now_),
                        coalesce(c.head_at, '-infinity'::timestamptz))`;
  await sql(`
    ALTER TABLE audit_chain ADD COLUMN head_previous_hash bytea;
    ALTER TABLE audit_events ${CHECKS.map(([name]) => `DROP CONSTRAINT ${name}`).join(', ')};

    CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER
      SET search_path = ${path}
      AS $$
      DECLARE
        now_ timestamptz := clock_timestamp();
        head audit_chain%ROWTYPE;
      BEGIN
        NEW.id := coalesce(NEW.id, gen_random_uuid());
${checkStatements(CONTENT_CHECKS)}
        FOR attempt IN 1..2 LOOP
          UPDATE audit_chain c
             SET head_sequence = c.head_sequence + 1,
                 head_at = ${at},
                 head_previous_hash = c.head_hash,
                 head_hash = sha256(convert_to(jsonb_build_array(
                   'v1', NEW.tenant_id, c.head_sequence + 1, NEW.id,
                   (extract(epoch FROM ${at}) * 1000000)::bigint,
                   NEW.actor_user_id, NEW.actor_roles, NEW.actor_system,
                   NEW.client_address, NEW.user_agent, NEW.request_id,
                   NEW.action, NEW.resource_type, NEW.resource_id, NEW.outcome,
                   NEW.changes, NEW.details, encode(c.head_hash, 'hex'))::text, 'UTF8'))
           WHERE c.tenant_id = NEW.tenant_id
          RETURNING c.* INTO head;
          IF FOUND THEN
            NEW.sequence := head.head_sequence;
            NEW.occurred_at := head.head_at;
            NEW.previous_hash := head.head_previous_hash;
            NEW.hash := head.head_hash;${checkStatements(CHAIN_CHECKS)}
            RETURN NEW;
          END IF;
          -- The tenant's first record: create its chain row, then move it like any other.
          INSERT INTO audit_chain (tenant_id) VALUES (NEW.tenant_id)
            ON CONFLICT (tenant_id) DO NOTHING;
        END LOOP;
        RAISE EXCEPTION 'cannot append to the audit chain of tenant %: no chain row', NEW.tenant_id;
      END
      $$;

    ${appendFunction(schema)}

    DROP TRIGGER audit_chain_guard ON audit_chain;
    CREATE TRIGGER audit_chain_guard BEFORE INSERT OR DELETE ON audit_chain
      FOR EACH ROW EXECUTE FUNCTION audit_chain_guard();
  `);
}

/** Puts back the trigger, its function and the chain table of 2026120406-audit-events. */
export async function down({ sql, schema }: MigrationContext): Promise<void> {
  const path = `${quoteIdent(schema)}, pg_catalog`;
  await sql(`
    DROP TRIGGER audit_chain_guard ON audit_chain;
    CREATE TRIGGER audit_chain_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_chain
      FOR EACH ROW EXECUTE FUNCTION audit_chain_guard();

    DROP FUNCTION audit_append(timestamptz, text, text[], text, text, text, text, text, text,
      text, text, jsonb, jsonb);

    CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER
      SET search_path = ${path}
      AS $$
      DECLARE
        head audit_chain%ROWTYPE;
      BEGIN
        SELECT * INTO head FROM audit_chain WHERE tenant_id = NEW.tenant_id FOR UPDATE;
        IF NOT FOUND THEN
          INSERT INTO audit_chain (tenant_id) VALUES (NEW.tenant_id)
            ON CONFLICT (tenant_id) DO NOTHING;
          SELECT * INTO head FROM audit_chain WHERE tenant_id = NEW.tenant_id FOR UPDATE;
        END IF;
        NEW.sequence := head.head_sequence + 1;
        NEW.previous_hash := head.head_hash;
        NEW.id := coalesce(NEW.id, gen_random_uuid());
        NEW.occurred_at := greatest(
          least(coalesce(NEW.occurred_at, clock_timestamp()), clock_timestamp()),
          coalesce(head.head_at, '-infinity'::timestamptz));
        NEW.hash := audit_event_hash(NEW);
        UPDATE audit_chain
           SET head_sequence = NEW.sequence, head_hash = NEW.hash, head_at = NEW.occurred_at
         WHERE tenant_id = NEW.tenant_id;
        RETURN NEW;
      END
      $$;

    ALTER TABLE audit_chain DROP COLUMN head_previous_hash;
    ALTER TABLE audit_events ${CHECKS.map(([name, condition]) => `ADD CONSTRAINT ${name} CHECK (${condition('')})`).join(',\n      ')};
  `);
}
