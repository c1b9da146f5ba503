/* eslint-disable @typescript-eslint/no-unsafe-member-access --
   response bodies are untyped JSON, and the assertions are what check their shape. */
import { expect } from 'chai';
import { QueryTypes } from 'sequelize';
import { organizationBody, startHarness, type Harness } from './support.js';

interface AuditRow {
  action: string;
  outcome: string;
  resource_id: string | null;
  changes: { before?: Record<string, unknown>; after?: Record<string, unknown> } | null;
}

describe('organization service: audit records', function () {
  this.timeout(60_000);
  let h: Harness;

  before(async () => {
    h = await startHarness('org_audit');
  });
  after(async () => {
    await h?.close();
  });

  /** The tenant's audit records, read as the operator (superuser) would. */
  async function records(schema: string, resourceId?: string): Promise<AuditRow[]> {
    await h.plane.sealAudit(schema);
    return h.plane.db.sequelize.query<AuditRow>(
      `SELECT action, outcome, resource_id, changes FROM ${schema}.audit_events
        WHERE $1::text IS NULL OR resource_id = $1 ORDER BY sequence`,
      { bind: [resourceId ?? null], type: QueryTypes.SELECT, transaction: null },
    );
  }

  it('when an organization is created, changed, archived, restored and deleted, each change has its record', async () => {
    const created = await h.call('POST', '/org/organizations', { body: organizationBody('AUD') });
    const id = created.body.id as string;
    await h.call('PATCH', `/org/organizations/${id}`, {
      body: { displayName: 'Audited' },
      headers: { 'If-Match': '"0"' },
    });
    await h.call('POST', `/org/organizations/${id}/archive`);
    await h.call('POST', `/org/organizations/${id}/restore`);
    await h.call('DELETE', `/org/organizations/${id}`);

    const rows = await records('tenant_alpha', id);

    expect(rows.map((r) => `${r.action}:${r.outcome}`)).to.deep.equal([
      'organization.created:success',
      'organization.updated:success',
      'organization.archived:success',
      'organization.restored:success',
      'organization.deleted:success',
    ]);
    expect(rows[1]?.changes).to.deep.include({
      before: { displayName: 'AUD Group' },
      after: { displayName: 'Audited' },
    });
    expect(await records('tenant_bravo', id)).to.have.length(0);
  });

  it('when a write fails, its audit record rolls back with it', async () => {
    await h.call('POST', '/org/organizations', { body: organizationBody('ONCE') });
    const before = (await records('tenant_alpha')).length;

    const duplicate = await h.call('POST', '/org/organizations', {
      body: organizationBody('ONCE'),
    });

    expect(duplicate.status).to.equal(409);
    expect((await records('tenant_alpha')).length).to.equal(before);
  });

  it('when a request is invalid, it is recorded as rejected', async () => {
    const invalid = await h.call('POST', '/org/organizations', { body: { code: '' } });

    const last = (await records('tenant_alpha')).at(-1);
    expect(invalid.status).to.equal(400);
    expect(last).to.include({ action: 'request.rejected', outcome: 'failure' });
  });

  it('when a member tries to write, the refusal is recorded as denied', async () => {
    const refused = await h.call('POST', '/org/organizations', {
      roles: ['member'],
      body: organizationBody('NOPE'),
    });

    const last = (await records('tenant_alpha')).at(-1);
    expect(refused.status).to.equal(403);
    expect(last).to.include({ action: 'access.denied', outcome: 'denied' });
  });

  describe('the audit API at /audit', () => {
    it("lets an administrator read the tenant's records and verify their chain", async () => {
      await h.call('POST', '/org/organizations', { body: organizationBody('API') });

      const events = await h.call('GET', '/audit/events?action=organization.created');
      const verify = await h.call('GET', '/audit/verify');

      expect(events.status).to.equal(200);
      const actions = (events.body.items as { action: string }[]).map((e) => e.action);
      expect(actions).to.not.be.empty;
      expect(new Set(actions)).to.deep.equal(new Set(['organization.created']));
      expect(verify.status).to.equal(200);
      expect(verify.body.valid).to.equal(true);
    });

    it('lets an auditor read it and refuses a member', async () => {
      const auditor = await h.call('GET', '/audit/events', { roles: ['auditor'] });
      const member = await h.call('GET', '/audit/events', { roles: ['member'] });

      expect(auditor.status).to.equal(200);
      expect(member.status).to.equal(403);
    });

    it("shows a tenant none of another tenant's records", async () => {
      const created = await h.call('POST', '/org/organizations', {
        tenant: h.bravo,
        body: organizationBody('BRAVO-ONLY'),
      });

      const alpha = await h.call('GET', `/audit/events?resourceId=${created.body.id as string}`);

      expect(created.status).to.equal(201);
      expect(alpha.body.items).to.have.length(0);
    });

    it('answers another method than GET with 405 and Allow, as the service’s own routes do', async () => {
      const post = await h.call('POST', '/audit/events', { body: {} });
      const remove = await h.call('DELETE', '/audit/verify');
      const own = await h.call('PUT', '/org/organizations', { body: {} });

      for (const answer of [post, remove]) {
        expect(answer.status).to.equal(405);
        expect(answer.body.code).to.equal('METHOD_NOT_ALLOWED');
        expect(answer.headers.get('allow')).to.equal('GET, HEAD');
      }
      expect(own.status).to.equal(405);
    });
  });
});
