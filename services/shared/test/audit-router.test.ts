import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { QueryTypes } from 'sequelize';
import {
  recordAuditSeparately,
  sealAudit,
  withTenantTransaction,
  type AuditEvent,
  type RunningService,
} from '@vextrus/shared';
import {
  createAuditPlane,
  createTokenMint,
  startAuditService,
  type AuditPlane,
  type TokenMint,
} from './audit-support.js';

interface Item {
  sequence: number;
  occurredAt: string;
  action: string;
  outcome: string;
  resourceId: string | null;
  actor: { userId: string | null; roles: string[]; system: string | null };
  details: Record<string, unknown> | null;
  hash: string;
}

interface Page {
  items: Item[];
  nextCursor: string | null;
}

const ADMIN = randomUUID();
const DAY = 86_400_000;

describe('audit query API', function () {
  this.timeout(60_000);
  let t: AuditPlane;
  let mint: TokenMint;
  let service: RunningService;
  const start = Date.now() - 10 * DAY;

  /** 30 records over 10 days: actions alternate, every third is a failure, two actors. */
  async function seed(): Promise<void> {
    for (let i = 0; i < 30; i++) {
      const event: AuditEvent = {
        action: i % 2 === 0 ? 'organization.updated' : 'organization.created',
        outcome: i % 3 === 0 ? 'failure' : 'success',
        resourceType: 'organization',
        resourceId: `org-${i}`,
        actor: i % 5 === 0 ? { system: 'operator' } : { userId: ADMIN, roles: ['tenant_admin'] },
      };
      await recordAuditSeparately(t.app, t.tenants.acme!, event, {
        occurredAt: new Date(start + (i * DAY) / 3),
      });
    }
  }

  async function get(path: string, token: string, tenant = 'acme'): Promise<Response> {
    return fetch(`${service.url}/audit${path}`, {
      headers: { Authorization: `Bearer ${token}`, 'X-Tenant-ID': tenant },
    });
  }

  async function page(path: string, token = mint.token(t.tenants.acme!, ['auditor'])) {
    const response = await get(path, token);
    expect(response.status, await response.clone().text()).to.equal(200);
    return (await response.json()) as Page;
  }

  async function lastEvent(slug: string, action: string) {
    await sealAudit(t.app, t.tenants[slug]!);
    const [row] = await withTenantTransaction(t.app, t.tenants[slug]!, () =>
      t.app.query<{ actor_user_id: string; outcome: string; details: Record<string, unknown> }>(
        `SELECT actor_user_id, outcome, details FROM audit_events WHERE action = $1
          ORDER BY sequence DESC LIMIT 1`,
        { bind: [action], type: QueryTypes.SELECT },
      ),
    );
    return row;
  }

  before(async () => {
    t = await createAuditPlane('audit_router', ['acme', 'beta']);
    mint = createTokenMint();
    service = await startAuditService(t, mint);
    await seed();
  });
  after(async () => {
    await service.stop();
    await t.close();
  });

  it('when an auditor pages through the events, each comes once, newest first', async () => {
    const seen: number[] = [];
    let cursor: string | null = '';

    while (cursor !== null) {
      const result: Page = await page(`/events?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...result.items.map((item) => item.sequence));
      cursor = result.nextCursor;
    }

    expect(seen).to.deep.equal(Array.from({ length: 30 }, (_, i) => 30 - i));
  });

  it('when filtered by action and outcome, it answers only the matching events', async () => {
    const result = await page('/events?action=organization.updated&outcome=failure');

    expect(result.items.map((item) => item.resourceId)).to.deep.equal([
      'org-24',
      'org-18',
      'org-12',
      'org-6',
      'org-0',
    ]);
  });

  it('when filtered by a system actor and a resource, it answers that actor’s event', async () => {
    const result = await page('/events?actor=system:operator&resourceId=org-10');

    expect(result.items).to.have.length(1);
    expect(result.items[0]?.actor).to.deep.equal({ userId: null, roles: [], system: 'operator' });
  });

  it('when filtered by a time range, it answers the events from inclusive to exclusive', async () => {
    const from = new Date(start + 3 * DAY).toISOString();
    const to = new Date(start + 4 * DAY).toISOString();

    const result = await page(`/events?from=${from}&to=${to}`);

    expect(result.items.map((item) => item.resourceId)).to.deep.equal([
      'org-11',
      'org-10',
      'org-9',
    ]);
  });

  it('when the filters are invalid, it answers 400 listing each field, and audits the rejection', async () => {
    const response = await get(
      '/events?outcome=maybe&from=yesterday&limit=5000&colour=red',
      mint.token(t.tenants.acme!, ['tenant_admin'], ADMIN),
    );

    const problem = (await response.json()) as { code: string; errors: { field: string }[] };
    expect(response.status).to.equal(400);
    expect(response.headers.get('content-type')).to.contain('application/problem+json');
    expect(problem.code).to.equal('VALIDATION_FAILED');
    expect(problem.errors.map((e) => e.field).sort()).to.deep.equal([
      'colour',
      'from',
      'limit',
      'outcome',
    ]);
    const recorded = await lastEvent('acme', 'request.rejected');
    expect(recorded).to.deep.include({ actor_user_id: ADMIN, outcome: 'failure' });
    expect(recorded?.details).to.include({ code: 'VALIDATION_FAILED', path: '/audit/events' });
  });

  it('when the cursor was not given out by the API, it answers 400', async () => {
    const response = await get(
      '/events?cursor=bm90LWEtY3Vyc29y',
      mint.token(t.tenants.acme!, ['auditor']),
    );

    expect(response.status).to.equal(400);
  });

  it('when a member asks, it answers 403 and the refusal is audited in the member’s tenant', async () => {
    const member = randomUUID();

    const response = await get('/events', mint.token(t.tenants.acme!, ['member'], member));

    expect(response.status).to.equal(403);
    const recorded = await lastEvent('acme', 'access.denied');
    expect(recorded).to.deep.include({ actor_user_id: member, outcome: 'denied' });
    expect(recorded?.details).to.include({ code: 'FORBIDDEN', method: 'GET' });
  });

  it('when the token names another tenant than X-Tenant-ID, the refusal goes to the token’s tenant only', async () => {
    const intruder = randomUUID();

    const response = await get(
      '/events',
      mint.token(t.tenants.acme!, ['tenant_admin'], intruder),
      'beta',
    );

    expect(response.status).to.equal(403);
    expect(((await response.json()) as { code: string }).code).to.equal('TENANT_MISMATCH');
    const recorded = await lastEvent('acme', 'access.denied');
    expect(recorded).to.deep.include({ actor_user_id: intruder });
    expect(recorded?.details).to.include({ code: 'TENANT_MISMATCH', addressed: 'beta' });
    expect(await lastEvent('beta', 'access.denied')).to.equal(undefined);
  });

  it('when an administrator exports with a filter, it streams one JSON line per matching event', async () => {
    const response = await get(
      '/events/export?action=organization.created',
      mint.token(t.tenants.acme!, ['tenant_admin']),
    );

    const text = await response.text();
    expect(response.status).to.equal(200);
    expect(response.headers.get('content-type')).to.contain('application/x-ndjson');
    const lines = text
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Item);
    expect(lines).to.have.length(15);
    expect(lines.every((line) => line.action === 'organization.created')).to.equal(true);
    expect(lines.map((line) => line.sequence)).to.deep.equal(
      [...lines.map((line) => line.sequence)].sort((a, b) => a - b),
    );
  });

  it('when asked to verify, it answers the chain report of the tenant', async () => {
    const response = await get('/verify', mint.token(t.tenants.acme!, ['auditor']));

    const report = (await response.json()) as { valid: boolean; head: { sequence: number } };
    expect(response.status).to.equal(200);
    expect(report.valid).to.equal(true);
    expect(report.head.sequence).to.be.greaterThanOrEqual(30);
  });

  it('when the owner edits a record, verify through the API names it', async () => {
    await t.superuser(`
      SET session_replication_role = replica;
      UPDATE ${t.tenants.acme!.schema}.audit_events SET resource_id = 'org-x' WHERE sequence = 12;
    `);

    const response = await get('/verify', mint.token(t.tenants.acme!, ['auditor']));

    const report = (await response.json()) as { valid: boolean; problem: object };
    expect(report.valid).to.equal(false);
    expect(report.problem).to.deep.include({ code: 'RECORD_ALTERED', sequence: 12 });
  });
});
