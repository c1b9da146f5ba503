import { setImmediate as tick } from 'node:timers/promises';
import { expect } from 'chai';
import {
  DataTypes,
  Model,
  QueryTypes,
  Sequelize,
  UniqueConstraintError,
  type ModelStatic,
} from 'sequelize';
import {
  TenancyErrorCode,
  assertSafeLoginRole,
  currentTenant,
  transactionRows,
  transactionWithSettings,
  withTenantTransaction,
  type TenancyError,
  type TenantContext,
} from '@vextrus/shared';
import { deprovision, provision } from '../src/index.js';
import { createPlane, loginUrl, type TestPlane } from '@vextrus/devkit';

class Organization extends Model {
  declare id: string;
  declare code: string;
  declare displayName: string;
}

/** The organizations model as a service would define it: no schema, no tenant_id attribute. */
function defineOrganization(sequelize: Sequelize): ModelStatic<Organization> {
  return Organization.init(
    {
      id: { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 },
      code: { type: DataTypes.TEXT, allowNull: false },
      legalName: { type: DataTypes.TEXT, allowNull: false },
      displayName: { type: DataTypes.TEXT, allowNull: false },
      country: { type: DataTypes.CHAR(2), allowNull: false },
      currency: { type: DataTypes.CHAR(3), allowNull: false },
      timeZone: { type: DataTypes.TEXT, allowNull: false },
    },
    { sequelize, tableName: 'organizations', underscored: true },
  );
}

function organization(code: string): Record<string, string> {
  return {
    code,
    legalName: `${code} Ltd`,
    displayName: code,
    country: 'BD',
    currency: 'BDT',
    timeZone: 'Asia/Dhaka',
  };
}

async function failure(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  return promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: Error) => err,
  );
}

/** The tenant ids of the rows a query returned. */
async function tenantIds(sequelize: Sequelize, table = 'organizations'): Promise<string[]> {
  const rows = await sequelize.query<{ tenant_id: string }>(`SELECT tenant_id FROM ${table}`, {
    type: QueryTypes.SELECT,
  });
  return [...new Set(rows.map((row) => row.tenant_id))];
}

describe('tenant isolation', function () {
  this.timeout(120_000);
  let plane: TestPlane;
  let app: Sequelize;
  let a: TenantContext;
  let b: TenantContext;
  let bIds: string[];

  before(async () => {
    plane = await createPlane('isolation');
    const [ra, rb] = [await provision(plane.db, 'alpha'), await provision(plane.db, 'bravo')];
    a = { tenantId: ra.tenantId, schema: ra.schema, role: ra.role };
    b = { tenantId: rb.tenantId, schema: rb.schema, role: rb.role };
    app = new Sequelize(plane.appUrl, { logging: false, pool: { max: 10 } });
    defineOrganization(app);
    await withTenantTransaction(app, a, () =>
      Organization.bulkCreate([organization('A1'), organization('A2')]),
    );
    const created = await withTenantTransaction(app, b, () =>
      Organization.bulkCreate([organization('B1'), organization('B2')]),
    );
    bIds = created.map((row) => row.id);
  });
  after(async () => {
    await app.close();
    await plane.close();
  });

  it('in tenant A’s context, model and raw reads see only A’s rows', async () => {
    const [rows, ids] = await withTenantTransaction(app, a, async () => [
      await Organization.findAll({ order: [['code', 'ASC']] }),
      await tenantIds(app),
    ]);

    expect(rows.map((row) => row.code)).to.deep.equal(['A1', 'A2']);
    expect(ids).to.deep.equal([a.tenantId]);
  });

  it('in tenant A’s context, updates and deletes of B’s rows touch nothing', async () => {
    const [updated, deleted, widest] = await withTenantTransaction(app, a, async () => [
      (await Organization.update({ displayName: 'hijacked' }, { where: { id: bIds } }))[0],
      await Organization.destroy({ where: { id: bIds } }),
      (await app.query(`UPDATE organizations SET display_name = display_name`))[1],
    ]);
    const bRows = await withTenantTransaction(app, b, () => Organization.findAll());

    expect(updated).to.equal(0);
    expect(deleted).to.equal(0);
    expect((widest as { rowCount: number }).rowCount).to.equal(2);
    expect(bRows.map((row) => row.displayName).sort()).to.deep.equal(['B1', 'B2']);
  });

  it('in tenant A’s context, a row claiming to be B’s cannot be written', async () => {
    const error = await failure(
      withTenantTransaction(app, a, () =>
        app.query(
          `INSERT INTO organizations (tenant_id, code, legal_name, display_name, country,
             currency, time_zone) VALUES ($1, 'X', 'X', 'X', 'BD', 'BDT', 'UTC')`,
          { bind: [b.tenantId] },
        ),
      ),
    );

    expect(error.message).to.match(/row-level security/);
  });

  it('when there is no tenant context, reads return no rows and inserts fail', async () => {
    const rows = await app.query('SELECT * FROM tenant_alpha.organizations', {
      type: QueryTypes.SELECT,
    });
    const error = await failure(
      app.query(`INSERT INTO tenant_alpha.organizations (code, legal_name, display_name, country,
                   currency, time_zone) VALUES ('X', 'X', 'X', 'BD', 'BDT', 'UTC')`),
    );

    expect(rows).to.deep.equal([]);
    expect(error.message).to.match(/null value in column "tenant_id"|row-level security/);
  });

  it('with a pool of one connection, A’s request leaves nothing behind for B’s', async () => {
    const single = new Sequelize(plane.appUrl, { logging: false, pool: { max: 1 } });
    try {
      await withTenantTransaction(single, a, () => single.query('SELECT 1'));
      await failure(
        withTenantTransaction(single, a, async () => {
          await single.query('SELECT 1');
          throw new Error('request failed');
        }),
      );
      const seenByB = await withTenantTransaction(single, b, () => tenantIds(single));
      const [leftover] = await single.query<Record<string, string | null>>(
        `SELECT current_setting('app.tenant_id', true) AS tenant, current_user AS "user",
                current_setting('search_path') AS path`,
        { type: QueryTypes.SELECT },
      );

      expect(seenByB).to.deep.equal([b.tenantId]);
      expect(leftover?.tenant ?? '').to.equal('');
      expect(leftover?.user).to.equal(plane.db.roles.app);
      expect(leftover?.path).to.not.contain('tenant_');
    } finally {
      await single.close();
    }
  });

  it('200 interleaved concurrent requests of A and B each see only their own rows', async () => {
    const requests = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b));

    const results = await Promise.all(
      requests.map((tenant) =>
        withTenantTransaction(app, tenant, async () => {
          await tick();
          const rows = await Organization.findAll();
          await tick();
          const ids = await tenantIds(app);
          return { tenant, context: currentTenant(), codes: rows.map((r) => r.code[0]), ids };
        }),
      ),
    );

    for (const { tenant, context, codes, ids } of results) {
      const letter = tenant === a ? 'A' : 'B';
      expect(context?.tenantId).to.equal(tenant.tenantId);
      expect(ids).to.deep.equal([tenant.tenantId]);
      expect(codes).to.deep.equal([letter, letter]);
    }
  });

  it('the application role cannot disable or alter RLS, nor drop the policy', async () => {
    for (const statement of [
      'ALTER TABLE tenant_alpha.organizations DISABLE ROW LEVEL SECURITY',
      'ALTER TABLE tenant_alpha.organizations NO FORCE ROW LEVEL SECURITY',
      'DROP POLICY tenant_isolation ON tenant_alpha.organizations',
      'CREATE POLICY open_door ON tenant_alpha.organizations USING (true)',
    ]) {
      const error = await failure(app.query(statement));
      expect(error.message, statement).to.match(/must be owner/);
    }
  });

  it('the application role cannot SET ROLE to the owner', async () => {
    const error = await failure(
      withTenantTransaction(app, a, () => app.query(`SET LOCAL ROLE ${plane.db.roles.owner}`)),
    );

    expect(error.message).to.match(/permission denied to set role/);
  });

  it('in tenant A’s context, B’s schema cannot be read directly', async () => {
    const denied = await failure(
      withTenantTransaction(app, a, () => app.query('SELECT * FROM tenant_bravo.organizations')),
    );
    const withoutRole = { tenantId: a.tenantId, schema: a.schema };
    const filtered = await withTenantTransaction(app, withoutRole, () =>
      app.query('SELECT * FROM tenant_bravo.organizations', { type: QueryTypes.SELECT }),
    );

    expect(denied.message).to.match(/permission denied for schema tenant_bravo/);
    expect(filtered).to.deep.equal([]);
  });

  it('in B’s transaction, rows go to A’s schema under no role: its policy names A', async () => {
    // A bug or an injected statement that takes A's role (the application role may act as every
    // tenant role) or runs without a role: B's rows must still not land in A's schema.
    const attempts = [
      ['with A’s role', `SET LOCAL ROLE ${a.role ?? ''}`],
      ['without a role', 'RESET ROLE'],
    ] as const;
    for (const [label, takeRole] of attempts) {
      const error = await failure(
        withTenantTransaction(app, b, async () => {
          await app.query(takeRole);
          await app.query(
            `INSERT INTO tenant_alpha.organizations
               (code, legal_name, display_name, country, currency, time_zone)
             VALUES ('B-IN-A', 'X', 'X', 'BD', 'BDT', 'UTC')`,
          );
        }),
      );
      expect(error.message, label).to.match(/violates row-level security policy/);
    }
    const stored = await plane.db.sequelize.query<{ count: string }>(
      `SELECT count(*) AS count FROM tenant_alpha.organizations WHERE code = 'B-IN-A'`,
      { type: QueryTypes.SELECT },
    );
    expect(stored[0]?.count).to.equal('0');
  });

  it('each table’s isolation policy names its own schema’s tenant', async () => {
    const policies = await plane.db.sequelize.query<{ schema: string; qual: string }>(
      `SELECT schemaname AS schema, qual FROM pg_policies
        WHERE policyname = 'tenant_isolation' AND schemaname IN ('tenant_alpha', 'tenant_bravo')`,
      { type: QueryTypes.SELECT },
    );

    expect(policies.length).to.be.greaterThan(10);
    for (const { schema, qual } of policies) {
      const own = schema === 'tenant_alpha' ? a.tenantId : b.tenantId;
      const other = schema === 'tenant_alpha' ? b.tenantId : a.tenantId;
      expect(qual, schema).to.include(own).and.not.include(other);
    }
  });

  it('a tenant transaction inside another tenant’s is refused', async () => {
    const error = await failure(
      withTenantTransaction(app, a, () => withTenantTransaction(app, b, () => tenantIds(app))),
    );

    expect(error.code).to.equal(TenancyErrorCode.NestedContext);
  });

  it('in A’s transaction, transactionRows runs on its connection and fails as Sequelize does', async () => {
    const [seen, settings] = await withTenantTransaction(app, a, async () => [
      await transactionRows<{ code: string }>(app, 'SELECT code FROM organizations ORDER BY code'),
      await transactionRows<{ tenant: string; path: string }>(
        app,
        `SELECT current_setting('app.tenant_id') AS tenant, current_setting('search_path') AS path`,
      ),
    ]);
    const error = await failure(
      withTenantTransaction(app, a, () =>
        transactionRows(
          app,
          `INSERT INTO organizations (code, legal_name, display_name, country, currency, time_zone)
           VALUES ($1, 'X', 'X', 'BD', 'BDT', 'UTC')`,
          ['A1'],
        ),
      ),
    );

    expect(seen.map((row) => row.code)).to.deep.equal(['A1', 'A2']);
    expect(settings).to.deep.equal([{ tenant: a.tenantId, path: `"${a.schema}"` }]);
    expect(error).to.be.instanceOf(UniqueConstraintError);
    expect((error as UniqueConstraintError & { parent: { code: string } }).parent.code).to.equal(
      '23505',
    );
  });

  it('a failing tenant transaction rolls back; a committed one runs its afterCommit hooks', async () => {
    const insert = `INSERT INTO organizations (code, legal_name, display_name, country, currency,
      time_zone) VALUES ($1, 'X', 'X', 'BD', 'BDT', 'UTC')`;
    const error = await failure(
      withTenantTransaction(app, a, async () => {
        await transactionRows(app, insert, ['A-ROLLED-BACK']);
        throw new Error('the handler failed');
      }),
    );
    let hooked = false;
    await withTenantTransaction(app, a, async (transaction) => {
      transaction.afterCommit(() => {
        hooked = true;
      });
      await transactionRows(app, insert, ['A-COMMITTED']);
    });
    const codes = await withTenantTransaction(app, a, () =>
      transactionRows<{ code: string }>(app, 'SELECT code FROM organizations WHERE code LIKE $1', [
        'A-%',
      ]),
    );
    await withTenantTransaction(app, a, () =>
      transactionRows(app, `DELETE FROM organizations WHERE code = 'A-COMMITTED'`),
    );

    expect(error.message).to.equal('the handler failed');
    expect(hooked).to.equal(true);
    expect(codes.map((row) => row.code)).to.deep.equal(['A-COMMITTED']);
  });

  it('a transaction setting that could leave its literal is refused before any statement', async () => {
    const error = await failure(
      transactionWithSettings(app, { search_path: "x', true); DROP TABLE t; --" }, () =>
        Promise.resolve(),
      ),
    );

    expect(error.code).to.equal(TenancyErrorCode.InvalidContext);
  });

  it('when a tenant is retained, the application role cannot reach its data', async () => {
    const charlie = await provision(plane.db, 'charlie');
    await deprovision(plane.db, 'charlie', 'retain');

    const context = { tenantId: charlie.tenantId, schema: charlie.schema };
    const error = await failure(
      withTenantTransaction(app, context, () =>
        app.query('SELECT * FROM tenant_charlie.organizations'),
      ),
    );

    expect(error.message).to.match(/permission denied/);
  });

  it('when a retained tenant is still named with its role, the transaction is refused as unavailable', async () => {
    const delta = await provision(plane.db, 'delta');
    await deprovision(plane.db, 'delta', 'retain');

    const context = { tenantId: delta.tenantId, schema: delta.schema, role: delta.role };
    const error = (await failure(
      withTenantTransaction(app, context, () => app.query('SELECT 1')),
    )) as {
      code?: string;
      status?: number;
    };

    expect(error.code).to.equal('TENANT_UNAVAILABLE');
    expect(error.status).to.equal(403);
  });

  it('when the opening fails, a transaction whose work never touched the database fails too', async () => {
    const echo = await provision(plane.db, 'echo');
    await deprovision(plane.db, 'echo', 'retain');

    const context = { tenantId: echo.tenantId, schema: echo.schema, role: echo.role };
    const error = (await failure(
      withTenantTransaction(app, context, () => Promise.resolve(1)),
    )) as {
      code?: string;
    };

    expect(error.code).to.equal('TENANT_UNAVAILABLE');
  });

  it('when the tenant role no longer exists (tenant deleted), it answers TENANT_UNAVAILABLE', async () => {
    const context = { ...a, role: 'tenant_role_that_was_dropped' };

    const error = await failure(withTenantTransaction(app, context, () => Promise.resolve(1)));

    expect(error.code).to.equal('TENANT_UNAVAILABLE');
  });

  it('when fn swallows a failed statement and returns, it rejects instead of losing the write', async () => {
    const code = `SWALLOW${Date.now() % 100000}`;
    const error = await failure(
      withTenantTransaction(app, a, async () => {
        await transactionRows(
          app,
          `INSERT INTO organizations (code, legal_name, display_name, country, currency, time_zone)
           VALUES ($1, 'Swallow', 'Swallow', 'BD', 'BDT', 'Asia/Dhaka') RETURNING code`,
          [code],
        );
        await transactionRows(app, 'SELECT 1/0').catch(() => undefined);
        return 'resolved';
      }),
    );
    const stored = await withTenantTransaction(app, a, () =>
      transactionRows(app, 'SELECT code FROM organizations WHERE code = $1', [code]),
    );

    expect(error.code).to.equal(TenancyErrorCode.RolledBack);
    expect(stored).to.have.length(0);
  });

  it('the start-up check accepts the application role, refuses superuser and owner', async () => {
    const owner = new Sequelize(
      loginUrl(plane.database.url, plane.db.roles.owner, plane.ownerPassword),
      { logging: false },
    );
    try {
      await assertSafeLoginRole(app);
      const asSuperuser = (await failure(assertSafeLoginRole(plane.db.sequelize))) as TenancyError;
      const asOwner = (await failure(assertSafeLoginRole(owner))) as TenancyError;

      expect(asSuperuser.code).to.equal(TenancyErrorCode.UnsafeLoginRole);
      expect(asSuperuser.message).to.contain('superuser');
      expect(asOwner.message).to.contain('owns tenant tables (tenant_alpha.');
    } finally {
      await owner.close();
    }
  });
});
