import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startPostgres, type RunningPostgres } from '@vextrus/devkit';
import { PASSWORD, call, createAuthHarness, type AuthHarness } from './support.js';

/*
 * The auth service while its PostgreSQL is stopped and started again, with no restart of the
 * service. A database it cannot reach must never look like wrong credentials or a spent token:
 * login and refresh answer 503 problem+json, a failed login is not counted against the account,
 * and the refresh token sent during the outage still works afterwards. The suite runs a
 * PostgreSQL of its own, since it stops it.
 */
describe('auth service during a database outage (real PostgreSQL, stopped and started)', function () {
  this.timeout(120_000);
  let folder: string;
  let postgres: RunningPostgres;
  let harness: AuthHarness;
  let base: string;
  let sharedUrl: string | undefined;
  let schema: string;
  const password = randomBytes(12).toString('hex');

  const startDatabase = (port?: number): Promise<RunningPostgres> =>
    startPostgres({ dataDir: path.join(folder, 'data'), password, durable: false, port });
  const login = (secret = PASSWORD) =>
    call(base, 'POST', '/auth/login', {
      tenant: 'alpha',
      body: { email: 'admin@alpha.example', password: secret },
    });
  const refresh = (refreshToken: unknown) =>
    call(base, 'POST', '/auth/refresh', { tenant: 'alpha', body: { refreshToken } });

  before(async () => {
    folder = await mkdtemp(path.join(tmpdir(), 'vextrus-auth-outage-'));
    // As root PostgreSQL runs as the postgres user, which must be able to enter the folder.
    await chmod(folder, 0o755);
    postgres = await startDatabase();
    // createPlane makes its database on the cluster this variable names: point it at ours.
    sharedUrl = process.env.VEXTRUS_TEST_POSTGRES_URL;
    process.env.VEXTRUS_TEST_POSTGRES_URL = postgres.url();
    harness = await createAuthHarness('auth_outage');
    const { service } = await harness.start({ AUTH_LOGIN_ACCOUNT_LIMIT: '3' });
    base = service.url;
    schema = (await harness.tenantWithAdmin('alpha', base)).tenant.schema;
  });

  after(async () => {
    await harness?.close();
    await postgres?.stop();
    if (sharedUrl !== undefined) process.env.VEXTRUS_TEST_POSTGRES_URL = sharedUrl;
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  it('answers 503 for login and refresh while PostgreSQL is down, and spends nothing', async () => {
    const session = await login();
    expect(session.status).to.equal(200);

    await postgres.stop();

    // More attempts than the account's limit: none of them may count as a failed login.
    const attempts = [];
    for (let i = 0; i < 4; i++) attempts.push(await login(i % 2 === 0 ? PASSWORD : 'wrong one'));
    for (const attempt of attempts) {
      expect(attempt.status).to.equal(503);
      expect(attempt.headers.get('content-type')).to.match(/^application\/problem\+json/);
      expect(attempt.headers.get('retry-after')).to.equal('5');
      expect(attempt.body.code).to.equal('UNAVAILABLE');
    }
    const refused = await refresh(session.body.refreshToken);
    expect(refused.status).to.equal(503);
    expect(refused.body.code).to.equal('UNAVAILABLE');
    // The signing keys are the service's own: verifiers can still fetch them.
    expect((await fetch(`${base}/.well-known/jwks.json`)).status).to.equal(200);

    postgres = await startDatabase(postgres.port);

    const renewed = await refresh(session.body.refreshToken);
    expect(renewed.status, JSON.stringify(renewed.body)).to.equal(200);
    expect(renewed.body.refreshToken).to.be.a('string').and.not.equal(session.body.refreshToken);
    expect((await login()).status).to.equal(200);
    const failed = await harness.audits(schema, 'auth.login.failed');
    expect(failed).to.have.length(0);
  });
});
