import { expect } from 'chai';
import pg from 'pg';
import { transactionTextRows, withTenantTransaction, type TenantContext } from '@vextrus/shared';
import { EVENT_COLUMNS, formatEvent } from '../src/audit/query.js';
import { createAuditPlane, type AuditPlane } from './audit-support.js';

/**
 * How PostgreSQL itself wrote a record as JSON before the API wrote it out in JavaScript
 * (json_build_object): the reference formatEvent must agree with, value for value.
 */
const REFERENCE = `json_build_object(
  'sequence', e.sequence, 'id', e.id,
  'occurredAt', to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
  'actor', json_build_object('userId', e.actor_user_id, 'roles', e.actor_roles,
                             'system', e.actor_system),
  'clientAddress', e.client_address, 'userAgent', e.user_agent, 'requestId', e.request_id,
  'action', e.action, 'resourceType', e.resource_type, 'resourceId', e.resource_id,
  'outcome', e.outcome, 'changes', e.changes, 'details', e.details,
  'previousHash', encode(e.previous_hash, 'hex'), 'hash', encode(e.hash, 'hex'))::text`;

/** Text that JSON and PostgreSQL's array syntax both have to escape. */
const ODD = 'say "hi", back\\slash\nnew line\ttab \u2028 é 漢字 🏗️ {braces} NULL';

describe('audit records as JSON', function () {
  this.timeout(60_000);
  let t: AuditPlane;
  let acme: TenantContext;

  before(async () => {
    t = await createAuditPlane('audit_format', ['acme']);
    acme = t.tenants.acme!;
    // Written as the superuser with the chain trigger off, so that every column holds exactly
    // what is given here: microseconds, empty and odd roles, NULLs, nested JSON.
    const superuser = new pg.Client({ connectionString: t.plane.database.url });
    await superuser.connect();
    try {
      await superuser.query('BEGIN');
      await superuser.query('SET LOCAL session_replication_role = replica');
      await superuser.query(
        `INSERT INTO "${acme.schema}".audit_events (tenant_id, sequence, occurred_at,
         actor_user_id, actor_roles, actor_system, client_address, user_agent, request_id,
         action, resource_type, resource_id, outcome, changes, details, previous_hash, hash)
       VALUES
         ($1, 1, '2026-01-02 03:04:05.000007+00', 'user-1', ARRAY['tenant_admin', $2, '', 'NULL'],
          NULL, '203.0.113.9', $2, 'req-1', 'organization.updated', 'organization', $2,
          'success', jsonb_build_object('before', jsonb_build_object('name', $2, 'n', 1.50),
            'after', jsonb_build_object('name', 'x', 'list', jsonb_build_array(1, 'a', null))),
          jsonb_build_object('note', $2), sha256('a'), sha256('b')),
         ($1, 2, '1999-12-31 23:59:59.999999+00', NULL, ARRAY[]::text[], 'operator', NULL, NULL,
          NULL, 'tenant.provisioned', NULL, NULL, 'failure', NULL, NULL, sha256('b'),
          sha256('c')),
         ($1, 3, '2026-12-04 00:00:00+00', 'u', ARRAY['a b', 'c,d'], NULL, NULL, '', NULL, 'auth.login.failed',
          'user', 'u', 'denied', '{}', '{}', sha256('c'), sha256('d'))`,
        [acme.tenantId, ODD],
      );
      await superuser.query('COMMIT');
    } finally {
      await superuser.end();
    }
  });
  after(() => t.close());

  it('when records hold odd text, NULLs and microseconds, formatEvent agrees with PostgreSQL', async () => {
    const [rows, reference] = await withTenantTransaction(t.app, acme, async (transaction) => [
      await transactionTextRows(
        t.app,
        transaction,
        `SELECT ${EVENT_COLUMNS} FROM audit_events e ORDER BY e.sequence`,
      ),
      await transactionTextRows(
        t.app,
        transaction,
        `SELECT ${REFERENCE} FROM audit_events e ORDER BY e.sequence`,
      ),
    ]);
    expect(rows).to.have.length(3);
    for (const [i, row] of rows.entries()) {
      const line = formatEvent(row);
      expect(line).not.to.include('\n');
      expect(JSON.parse(line)).to.deep.equal(JSON.parse(reference[i]![0]!));
    }
    const first = JSON.parse(formatEvent(rows[0]!)) as Record<string, unknown>;
    expect(first.occurredAt).to.equal('2026-01-02T03:04:05.000007Z');
    expect(first.userAgent).to.equal(ODD);
    expect(first.actor).to.deep.equal({
      userId: 'user-1',
      roles: ['tenant_admin', ODD, '', 'NULL'],
      system: null,
    });
  });
});
