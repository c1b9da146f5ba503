import type { MigrationContext } from '../migration.js';
import { quoteIdent } from '../identifiers.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/**
 * The audit log of a tenant: `audit_events`, append-only and hash-chained, and `audit_chain`,
 * one row per tenant holding the head of the chain and the retention checkpoint.
 *
 * Triggers do the bookkeeping, so no client can get it wrong or forge it:
 * - an insert locks the chain row (which serialises the audited writes of one tenant: the price
 *   of a chain that is correct under concurrent writers), takes the next sequence number and the
 *   previous hash, computes its own hash, and moves the head;
 * - an update or truncate is refused, whoever asks (privileges already refuse the application);
 * - a delete (only the retention role has the privilege) must take the oldest records, and
 *   leaves the sequence and hash of the last deleted record as the checkpoint, from which the
 *   chain still verifies;
 * - the chain row is written only by those triggers.
 * The definer functions run as the owner, who is subject to the forced row-level security like
 * everyone else, so they too see and touch only the transaction's tenant.
 */
export async function up({ sql, schema }: MigrationContext): Promise<void> {
  const path = `${quoteIdent(schema)}, pg_catalog`;
  await sql(`
    CREATE TABLE audit_chain (
      ${TENANT_ID_COLUMN},
      head_sequence bigint NOT NULL DEFAULT 0,
      head_hash bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex'),
      head_at timestamptz,
      checkpoint_sequence bigint NOT NULL DEFAULT 0,
      checkpoint_hash bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex'),
      checkpoint_at timestamptz,
      CONSTRAINT audit_chain_pkey PRIMARY KEY (tenant_id),
      CONSTRAINT audit_chain_sequence_check
        CHECK (checkpoint_sequence >= 0 AND checkpoint_sequence <= head_sequence),
      CONSTRAINT audit_chain_hash_check
        CHECK (length(head_hash) = 32 AND length(checkpoint_hash) = 32)
    );

    CREATE TABLE audit_events (
      ${TENANT_ID_COLUMN},
      sequence bigint NOT NULL,
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
      details jsonb,
      previous_hash bytea NOT NULL,
      hash bytea NOT NULL,
      CONSTRAINT audit_events_pkey PRIMARY KEY (tenant_id, sequence),
      CONSTRAINT audit_events_id_key UNIQUE (tenant_id, id),
      CONSTRAINT audit_events_sequence_check CHECK (sequence > 0),
      CONSTRAINT audit_events_action_check
        CHECK (action ~ '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$' AND length(action) <= 100),
      CONSTRAINT audit_events_outcome_check CHECK (outcome IN ('success', 'failure', 'denied')),
      CONSTRAINT audit_events_actor_check CHECK (
        (actor_user_id IS NULL OR length(actor_user_id) BETWEEN 1 AND 128) AND
        (actor_system IS NULL OR length(actor_system) BETWEEN 1 AND 128)),
      CONSTRAINT audit_events_request_check CHECK (
        (client_address IS NULL OR length(client_address) <= 64) AND
        (user_agent IS NULL OR length(user_agent) <= 256) AND
        (request_id IS NULL OR length(request_id) <= 128)),
      CONSTRAINT audit_events_resource_check CHECK (
        (resource_type IS NULL OR length(resource_type) BETWEEN 1 AND 100) AND
        (resource_id IS NULL OR length(resource_id) BETWEEN 1 AND 200)),
      CONSTRAINT audit_events_changes_check
        CHECK (changes IS NULL OR jsonb_typeof(changes) = 'object'),
      CONSTRAINT audit_events_details_check
        CHECK (details IS NULL OR jsonb_typeof(details) = 'object'),
      CONSTRAINT audit_events_hash_check CHECK (length(previous_hash) = 32 AND length(hash) = 32)
    );
    CREATE INDEX audit_events_occurred_at_idx ON audit_events (tenant_id, occurred_at);
    CREATE INDEX audit_events_actor_idx ON audit_events (tenant_id, actor_user_id, sequence);
    CREATE INDEX audit_events_action_idx ON audit_events (tenant_id, action, sequence);
    CREATE INDEX audit_events_resource_idx
      ON audit_events (tenant_id, resource_type, resource_id, sequence);

    -- The canonical serialization (version 1): a JSON array of every field in a fixed order, the
    -- time as integer microseconds (independent of the session's time zone), the previous hash
    -- in hex; jsonb prints it the same way every time. The hash is its SHA-256.
    CREATE FUNCTION audit_event_hash(e audit_events) RETURNS bytea
      LANGUAGE sql STABLE PARALLEL SAFE
      SET search_path = pg_catalog
      AS $$
        SELECT sha256(convert_to(jsonb_build_array(
          'v1', e.tenant_id, e.sequence, e.id,
          (extract(epoch FROM e.occurred_at) * 1000000)::bigint,
          e.actor_user_id, e.actor_roles, e.actor_system,
          e.client_address, e.user_agent, e.request_id,
          e.action, e.resource_type, e.resource_id, e.outcome,
          e.changes, e.details, encode(e.previous_hash, 'hex'))::text, 'UTF8'))
      $$;

    -- A caller may give the time (imports, tests); it is kept within [time of the head, now], so
    -- that time never runs backwards along the chain and retention can remove a prefix by time.
    CREATE FUNCTION audit_events_chain() RETURNS trigger
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

    CREATE FUNCTION audit_events_refuse() RETURNS trigger
      LANGUAGE plpgsql
      SET search_path = pg_catalog
      AS $$
      BEGIN
        RAISE EXCEPTION '% of %.% is refused: audit records are append-only',
          TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
      END
      $$;

    CREATE FUNCTION audit_events_checkpoint() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER
      SET search_path = ${path}
      AS $$
      DECLARE
        last record;
      BEGIN
        FOR last IN
          SELECT DISTINCT ON (d.tenant_id) d.tenant_id, d.sequence, d.hash, d.occurred_at
            FROM removed d ORDER BY d.tenant_id, d.sequence DESC
        LOOP
          IF EXISTS (SELECT 1 FROM audit_events e
                      WHERE e.tenant_id = last.tenant_id AND e.sequence < last.sequence) THEN
            RAISE EXCEPTION 'audit records may only be removed from the oldest end of the chain'
              USING ERRCODE = 'insufficient_privilege';
          END IF;
          UPDATE audit_chain
             SET checkpoint_sequence = last.sequence, checkpoint_hash = last.hash,
                 checkpoint_at = last.occurred_at
           WHERE tenant_id = last.tenant_id AND checkpoint_sequence < last.sequence;
        END LOOP;
        RETURN NULL;
      END
      $$;

    CREATE FUNCTION audit_chain_guard() RETURNS trigger
      LANGUAGE plpgsql
      SET search_path = pg_catalog
      AS $$
      BEGIN
        IF TG_LEVEL = 'STATEMENT' OR current_user <>
           (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = TG_RELID) THEN
          RAISE EXCEPTION '% of %.% is refused: only the audit triggers write it',
            TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF TG_OP = 'DELETE' THEN
          RETURN OLD;
        END IF;
        RETURN NEW;
      END
      $$;

    CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
      FOR EACH ROW EXECUTE FUNCTION audit_events_chain();
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
      FOR EACH ROW EXECUTE FUNCTION audit_events_refuse();
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
      FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse();
    CREATE TRIGGER audit_events_checkpoint AFTER DELETE ON audit_events
      REFERENCING OLD TABLE AS removed
      FOR EACH STATEMENT EXECUTE FUNCTION audit_events_checkpoint();
    CREATE TRIGGER audit_chain_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_chain
      FOR EACH ROW EXECUTE FUNCTION audit_chain_guard();
    CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
      FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_guard();
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql(`
    DROP FUNCTION audit_event_hash(audit_events);
    DROP TABLE audit_events;
    DROP TABLE audit_chain;
    DROP FUNCTION audit_events_chain();
    DROP FUNCTION audit_events_refuse();
    DROP FUNCTION audit_events_checkpoint();
    DROP FUNCTION audit_chain_guard();
  `);
}
