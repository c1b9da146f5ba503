import { expect } from 'chai';
import { QueryTypes } from 'sequelize';
import {
  AuditErrorCode,
  diffFields,
  recordAudit,
  recordAuditSeparately,
  runWithRequestContext,
  verifyAuditChain,
  withTenantTransaction,
  type TenantContext,
} from '@vextrus/shared';
import {
  createAuditPlane,
  failure,
  pgError,
  sealedEvents,
  type AuditPlane,
} from './audit-support.js';

interface StoredEvent {
  sequence: string;
  action: string;
  outcome: string;
  actor_user_id: string | null;
  actor_roles: string[];
  actor_system: string | null;
  client_address: string | null;
  user_agent: string | null;
  request_id: string | null;
  resource_type: string | null;
  resource_id: string | null;
  changes: { before: Record<string, unknown>; after: Record<string, unknown> } | null;
  details: Record<string, unknown> | null;
}

const USER = '6f1c2b7e-8a4d-4a51-9a43-0f8e2d7c9b10';

describe('audit records', function () {
  this.timeout(60_000);
  let t: AuditPlane;
  let acme: TenantContext;

  before(async () => {
    t = await createAuditPlane('audit_record', ['acme']);
    acme = t.tenants.acme!;
  });
  after(() => t.close());

  async function events(tenant = acme): Promise<StoredEvent[]> {
    return sealedEvents<StoredEvent>(t.app, tenant);
  }

  async function organizationCodes(): Promise<string[]> {
    const rows = await withTenantTransaction(t.app, acme, () =>
      t.app.query<{ code: string }>('SELECT code FROM organizations ORDER BY code', {
        type: QueryTypes.SELECT,
      }),
    );
    return rows.map((row) => row.code);
  }

  /**
   * Runs fn while the table that a record is first written to (audit_pending, until it is
   * chained) refuses records of the action organization.doomed.
   */
  async function whileDoomedIsRefused(fn: () => Promise<void>): Promise<void> {
    await t.superuser(
      `ALTER TABLE ${acme.schema}.audit_pending
         ADD CONSTRAINT audit_pending_test_refuse CHECK (action <> 'organization.doomed')`,
    );
    try {
      await fn();
    } finally {
      await t.superuser(
        `ALTER TABLE ${acme.schema}.audit_pending DROP CONSTRAINT audit_pending_test_refuse`,
      );
    }
  }

  /** A mutation as a service makes it: the change, then its audit record, in one transaction. */
  function createOrganization(code: string, action = 'organization.created'): Promise<void> {
    return withTenantTransaction(t.app, acme, async () => {
      await t.app.query(
        `INSERT INTO organizations (code, legal_name, display_name, country, currency, time_zone)
         VALUES ($1, $1, $1, 'BD', 'BDT', 'Asia/Dhaka')`,
        { bind: [code] },
      );
      await recordAudit({
        action,
        outcome: 'success',
        resourceType: 'organization',
        resourceId: code,
        changes: { after: { code } },
      });
    });
  }

  it('when a mutation records its event, both commit with the request’s actor and origin', async () => {
    const context = {
      reqId: 'req-123',
      clientIp: '203.0.113.7',
      userAgent: 'erp-test/1.0',
      userId: USER,
      roles: ['manager'],
    };

    await runWithRequestContext(context, () => createOrganization('FIRST'));

    const [event] = (await events()).filter((e) => e.resource_id === 'FIRST');
    expect(await organizationCodes()).to.include('FIRST');
    expect(event).to.deep.include({
      action: 'organization.created',
      outcome: 'success',
      actor_user_id: USER,
      actor_roles: ['manager'],
      actor_system: null,
      client_address: '203.0.113.7',
      user_agent: 'erp-test/1.0',
      request_id: 'req-123',
      resource_type: 'organization',
    });
  });

  it('when the audit insert fails, the mutation is rolled back and nothing is left', async () => {
    await whileDoomedIsRefused(async () => {
      const before = (await events()).length;

      const error = await failure(createOrganization('DOOMED', 'organization.doomed'));

      expect((error as { code?: string }).code).to.equal(AuditErrorCode.WriteFailed);
      expect(pgError(error).code).to.equal('23514');
      expect(await organizationCodes()).not.to.include('DOOMED');
      expect(await events()).to.have.length(before);
    });
  });

  it('when the second of two records in one transaction fails, nothing stays and both are named', async () => {
    await whileDoomedIsRefused(async () => {
      const before = (await events()).length;

      const error = await failure(
        withTenantTransaction(t.app, acme, async () => {
          await t.app.query(
            `INSERT INTO organizations (code, legal_name, display_name, country, currency,
               time_zone) VALUES ('TWICE', 'Twice', 'Twice', 'BD', 'BDT', 'Asia/Dhaka')`,
          );
          await recordAudit({ action: 'organization.created', outcome: 'success' });
          await recordAudit({ action: 'organization.doomed', outcome: 'success' });
        }),
      );

      expect((error as { code?: string }).code).to.equal(AuditErrorCode.WriteFailed);
      expect(error.message).to.include('organization.created, organization.doomed');
      expect(await organizationCodes()).not.to.include('TWICE');
      expect(await events()).to.have.length(before);
    });
  });

  it('when a record is made inside a savepoint that rolls back, it goes with the savepoint only', async () => {
    await withTenantTransaction(t.app, acme, async (outer) => {
      await recordAudit({ action: 'organization.kept', outcome: 'success' });
      await t.app
        .transaction({ transaction: outer }, async () => {
          await recordAudit({ action: 'organization.undone', outcome: 'success' });
          throw new Error('the nested step fails');
        })
        .catch(() => undefined);
    });

    const actions = (await events()).map((e) => e.action);
    expect(actions).to.include('organization.kept');
    expect(actions).not.to.include('organization.undone');
  });

  it('when text holds quotes, backslashes, dollar quotes and NUL, it is stored as given (NUL dropped)', async () => {
    const odd = `O'Brien \\ co $$ \\' '' \u0000end\\`;
    const actor = { userId: `u'\\`, roles: [`r'1`, 'r\\2', '{r,3}', '"r4"'] };
    await withTenantTransaction(t.app, acme, () =>
      runWithRequestContext({ reqId: `req'\\`, userAgent: odd, clientIp: '::1' }, () =>
        recordAudit({
          action: 'organization.renamed',
          outcome: 'success',
          actor,
          resourceType: 'organization',
          resourceId: odd,
          changes: { before: { name: odd }, after: { name: `${odd}'` } },
        }),
      ),
    );

    const [event] = (await events()).filter((e) => e.action === 'organization.renamed');
    const stored = odd.replace('\u0000', '');
    expect(event).to.deep.include({
      resource_id: stored,
      user_agent: stored,
      request_id: `req'\\`,
      actor_user_id: actor.userId,
      actor_roles: actor.roles,
      changes: { before: { name: stored }, after: { name: `${stored}'` } },
    });
  });

  it('when there is no tenant transaction, recordAudit refuses to write', async () => {
    const error = await failure(
      recordAudit({ action: 'organization.created', outcome: 'success' }),
    );

    expect(error.code).to.equal(AuditErrorCode.NoTransaction);
  });

  it('when the action is not lowercase and dotted, the event is refused', async () => {
    const error = await failure(
      withTenantTransaction(t.app, acme, () =>
        recordAudit({ action: 'OrganizationCreated', outcome: 'success' }),
      ),
    );

    expect(error.code).to.equal(AuditErrorCode.InvalidEvent);
  });

  it('when recorded separately, the record stays although the caller’s transaction rolls back', async () => {
    const error = await failure(
      withTenantTransaction(t.app, acme, async () => {
        await recordAuditSeparately(t.app, acme, {
          action: 'organization.update.denied',
          outcome: 'denied',
          actor: { userId: USER, roles: ['member'] },
          details: { reason: 'needs manager' },
        });
        throw new Error('the request fails after the refusal was recorded');
      }),
    );

    expect(error.message).to.match(/request fails/);
    const [event] = (await events()).filter((e) => e.action === 'organization.update.denied');
    expect(event).to.deep.include({
      outcome: 'denied',
      actor_user_id: USER,
      actor_roles: ['member'],
      details: { reason: 'needs manager' },
    });
  });

  it('when changes hold secrets, their values are never stored', async () => {
    const changes = diffFields(
      { email: 'a@example.com', passwordHash: '$argon2id$old', role: 'member', token: 'x' },
      { email: 'b@example.com', passwordHash: '$argon2id$new', role: 'member', token: 'x' },
    );

    await withTenantTransaction(t.app, acme, () =>
      recordAudit({
        action: 'user.updated',
        outcome: 'success',
        actor: { system: 'operator' },
        changes,
        details: { apiKey: 'k-123', nested: { refreshToken: 'r-1', note: 'kept' } },
      }),
    );

    const [event] = (await events()).filter((e) => e.action === 'user.updated');
    expect(event?.changes).to.deep.equal({
      before: { email: 'a@example.com', passwordHash: '[redacted]' },
      after: { email: 'b@example.com', passwordHash: '[redacted]' },
    });
    expect(event?.details).to.deep.equal({
      apiKey: '[redacted]',
      nested: { refreshToken: '[redacted]', note: 'kept' },
    });
    expect(event).to.deep.include({ actor_system: 'operator', actor_user_id: null });
    expect(JSON.stringify(event)).not.to.match(/argon2id|k-123|r-1/);
  });

  it('when details hold lone surrogates or a long string cut inside a character, the record is stored', async () => {
    const long = `${'x'.repeat(4095)}\u{1F600}tail`;

    await withTenantTransaction(t.app, acme, () =>
      recordAudit({
        action: 'user.login_failed_oddly',
        outcome: 'failure',
        resourceId: 'id\udfff',
        details: { email: 'admin@acme.example\udfff', lone: '\ud83d', long },
      }),
    );

    const [event] = (await events()).filter((e) => e.action === 'user.login_failed_oddly');
    const details = event?.details as Record<string, string> | undefined;
    expect(details?.email).to.equal('admin@acme.example\uFFFD');
    expect(details?.lone).to.equal('\uFFFD');
    expect(details?.long).to.equal('x'.repeat(4095));
  });

  it('when 200 mutations run concurrently, there are 200 records and the chain verifies', async () => {
    const before = (await events()).length;

    await Promise.all(
      Array.from({ length: 200 }, (_, i) => createOrganization(`C${String(i).padStart(3, '0')}`)),
    );

    const all = await events();
    const report = await verifyAuditChain(t.app, acme);
    expect(all.length - before).to.equal(200);
    expect(all.map((e) => Number(e.sequence))).to.deep.equal(all.map((_, i) => i + 1));
    expect(report).to.deep.include({ valid: true, checked: all.length });
    expect(report.head.sequence).to.equal(all.length);
  });

  for (const statement of [
    `UPDATE audit_events SET outcome = 'success'`,
    'DELETE FROM audit_events',
    'TRUNCATE audit_events',
    'DELETE FROM audit_chain',
    'UPDATE audit_chain SET head_sequence = 0',
  ]) {
    it(`when the application role runs "${statement}", it is refused`, async () => {
      const error = await failure(withTenantTransaction(t.app, acme, () => t.app.query(statement)));

      expect(pgError(error).code).to.equal('42501');
    });
  }

  it('when the application role inserts a forged chain row, it is refused', async () => {
    const error = await failure(
      withTenantTransaction(t.app, acme, () =>
        t.app.query(
          `INSERT INTO audit_chain (tenant_id, head_sequence) VALUES ($1, 99)
                     ON CONFLICT (tenant_id) DO UPDATE SET head_sequence = 99`,
          {
            bind: [acme.tenantId],
          },
        ),
      ),
    );

    expect(pgError(error).code).to.equal('42501');
  });

  for (const [column, value, constraint] of [
    ['action', 'Not.Dotted', 'audit_events_action_check'],
    ['outcome', 'maybe', 'audit_events_outcome_check'],
    ['resource_id', '', 'audit_events_resource_check'],
    ['changes', '[1]', 'audit_events_changes_check'],
  ] as const) {
    it(`when the application role inserts a record whose ${column} is invalid, ${constraint} refuses it`, async () => {
      const values = { action: 'organization.updated', outcome: 'success', [column]: value };
      const before = (await events()).length;

      const error = await failure(
        withTenantTransaction(t.app, acme, () =>
          t.app.query(
            `INSERT INTO audit_events (action, outcome, resource_id, changes)
             VALUES ($1, $2, $3, $4::jsonb)`,
            {
              bind: [
                values.action,
                values.outcome,
                values.resource_id ?? null,
                values.changes ?? null,
              ],
            },
          ),
        ),
      );

      expect(pgError(error)).to.include({ code: '23514', constraint });
      expect(await events()).to.have.length(before);
    });
  }

  it('when the application role inserts a record with its own sequence and hash, the chain overrides them', async () => {
    await withTenantTransaction(t.app, acme, () =>
      t.app.query(
        `INSERT INTO audit_events (sequence, action, outcome, previous_hash, hash)
         VALUES (1, 'forged.event', 'success', '\\x00', '\\x00')`,
      ),
    );

    const report = await verifyAuditChain(t.app, acme);
    const forged = (await events()).find((e) => e.action === 'forged.event');
    expect(Number(forged?.sequence)).to.equal(report.head.sequence);
    expect(report.valid).to.equal(true);
  });
});
