import { expect } from 'chai';
import { QueryTypes } from 'sequelize';
import { migrateTenant } from '@vextrus/migrations';
import {
  recordAudit,
  recordAuditSeparately,
  sealAudit,
  verifyAuditChain,
  withTenantTransaction,
  type TenantContext,
} from '@vextrus/shared';
import { createAuditPlane, type AuditPlane } from './audit-support.js';

/**
 * Services are upgraded by the chart while the operator migrates tenants one by one: a service
 * that writes records through audit_append (tenant migration 2026120425) meets tenants that do
 * not have it yet. Their audited writes must work all the same.
 */
describe('audit records during an upgrade', function () {
  this.timeout(60_000);
  let t: AuditPlane;
  let older: TenantContext;

  before(async () => {
    t = await createAuditPlane('audit_upgrade', ['older']);
    older = t.tenants.older!;
    // The tenant as an older release left it: without 2026120425-audit-fast-append.
    const reverted = [
      ...(await migrateTenant(t.plane.db, 'older', { direction: 'down' })),
      ...(await migrateTenant(t.plane.db, 'older', { direction: 'down' })),
    ];
    expect(reverted).to.deep.equal(['2026120426-audit-sealing', '2026120425-audit-fast-append']);
  });
  after(() => t.close());

  async function hasAppend(): Promise<boolean> {
    const [row] = await withTenantTransaction(t.app, older, () =>
      t.app.query<{ present: boolean }>(
        `SELECT to_regprocedure('audit_append(timestamptz, text, text[], text, text, text, text,
           text, text, text, text, jsonb, jsonb)') IS NOT NULL AS present`,
        { type: QueryTypes.SELECT },
      ),
    );
    return row?.present === true;
  }

  function change(code: string): Promise<void> {
    return withTenantTransaction(t.app, older, async () => {
      await t.app.query(
        `INSERT INTO organizations (code, legal_name, display_name, country, currency, time_zone)
         VALUES ($1, $1, $1, 'BD', 'BDT', 'Asia/Dhaka')`,
        { bind: [code] },
      );
      await recordAudit({
        action: 'organization.created',
        outcome: 'success',
        resourceType: 'organization',
        resourceId: code,
        changes: { after: { code } },
      });
    });
  }

  async function recorded(): Promise<string[]> {
    await sealAudit(t.app, older);
    const rows = await withTenantTransaction(t.app, older, () =>
      t.app.query<{ resource_id: string }>(
        'SELECT resource_id FROM audit_events ORDER BY sequence',
        { type: QueryTypes.SELECT },
      ),
    );
    return rows.map((row) => row.resource_id);
  }

  it('when the tenant has no audit_append yet, changes and refusals are recorded all the same', async () => {
    expect(await hasAppend()).to.equal(false);
    await Promise.all(Array.from({ length: 20 }, (_, i) => change(`OLD${i}`)));
    await recordAuditSeparately(t.app, older, {
      action: 'organization.update.denied',
      outcome: 'denied',
      resourceType: 'organization',
      resourceId: 'REFUSED',
    });

    const ids = await recorded();
    expect(ids).to.have.length(21);
    expect(ids).to.include.members(['OLD0', 'OLD19', 'REFUSED']);
    expect(await verifyAuditChain(t.app, older)).to.deep.include({ valid: true, checked: 21 });
  });

  it('when the tenant is migrated meanwhile, the chain goes on unbroken', async () => {
    await migrateTenant(t.plane.db, 'older', { direction: 'up' });
    expect(await hasAppend()).to.equal(true);
    await Promise.all(Array.from({ length: 10 }, (_, i) => change(`NEW${i}`)));

    const ids = await recorded();
    expect(ids).to.have.length(31);
    expect(await verifyAuditChain(t.app, older)).to.deep.include({ valid: true, checked: 31 });
  });

  it('when sealing is reverted, pending records are chained first, and later ones at once', async () => {
    // Through audit_append itself: this process still writes the plain INSERT to the schema it
    // found without the function (it looks again after 30 s).
    for (let i = 0; i < 5; i++) {
      await withTenantTransaction(t.app, older, () =>
        t.app.query(
          `SELECT audit_append(NULL, NULL, '{}', 'upgrade-test', NULL, NULL, NULL,
             'organization.created', 'organization', $1, 'success', NULL, NULL)`,
          { bind: [`PENDING${i}`] },
        ),
      );
    }
    const [pending] = await t
      .superuser(`SELECT count(*)::int AS n FROM ${older.schema}.audit_pending`)
      .then((result) => result.rows as { n: number }[]);
    expect(pending!.n).to.equal(5);

    const reverted = await migrateTenant(t.plane.db, 'older', { direction: 'down' });
    expect(reverted).to.deep.equal(['2026120426-audit-sealing']);
    await change('DIRECT');

    expect(await sealAudit(t.app, older)).to.equal(0);
    const ids = await recorded();
    expect(ids).to.have.length(37);
    expect(ids.slice(31)).to.deep.equal([0, 1, 2, 3, 4].map((i) => `PENDING${i}`).concat('DIRECT'));
    expect(await verifyAuditChain(t.app, older)).to.deep.include({ valid: true, checked: 37 });
  });
});
