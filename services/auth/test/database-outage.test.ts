import { expect } from 'chai';
import { startOwnPostgres, type OwnPostgres } from '@vextrus/devkit';
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
  let postgres: OwnPostgres;
  let harness: AuthHarness;
  let base: string;
  let schema: string;
  const login = (secret = PASSWORD) =>
    call(base, 'POST', '/auth/login', {
      tenant: 'alpha',
      body: { email: 'admin@alpha.example', password: secret },
    });
  const refresh = (refreshToken: unknown) =>
    call(base, 'POST', '/auth/refresh', { tenant: 'alpha', body: { refreshToken } });

  before(async () => {
    postgres = await startOwnPostgres('auth-outage');
    harness = await createAuthHarness('auth_outage');
    const { service } = await harness.start({ AUTH_LOGIN_ACCOUNT_LIMIT: '3' });
    base = service.url;
    schema = (await harness.tenantWithAdmin('alpha', base)).tenant.schema;
  });

  after(async () => {
    await harness?.close();
    await postgres?.dispose();
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

    await postgres.start();

    const renewed = await refresh(session.body.refreshToken);
    expect(renewed.status, JSON.stringify(renewed.body)).to.equal(200);
    expect(renewed.body.refreshToken).to.be.a('string').and.not.equal(session.body.refreshToken);
    expect((await login()).status).to.equal(200);
    const failed = await harness.audits(schema, 'auth.login.failed');
    expect(failed).to.have.length(0);
  });
});
