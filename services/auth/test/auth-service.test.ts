import { expect } from 'chai';
import { QueryTypes } from 'sequelize';
import {
  createTokenVerifier,
  remoteKeySource,
  withTenantTransaction,
  type RunningService,
} from '@vextrus/shared';
import { provision, seedAdmin, type ProvisionResult } from '@vextrus/migrations';
import type { AuthConfig } from '../src/config.js';
import { PASSWORD, call, comparable, createAuthHarness, type AuthHarness } from './support.js';

describe('auth service', function () {
  this.timeout(60_000);
  let harness: AuthHarness;
  let service: RunningService<AuthConfig>;
  let base: string;
  let alpha: ProvisionResult;
  let adminToken: string;

  before(async () => {
    harness = await createAuthHarness('auth_service');
    ({ service } = await harness.start({ AUTH_LOGIN_ACCOUNT_LIMIT: '10' }));
    base = service.url;
    const admin = await harness.tenantWithAdmin('alpha', base);
    alpha = admin.tenant;
    adminToken = admin.session.accessToken as string;
    await harness.tenantWithAdmin('bravo', base);
  });
  after(async () => harness.close());

  /** Invites a user as alpha's admin and accepts the invitation; returns the new session. */
  async function member(email: string, role = 'member'): Promise<Record<string, unknown>> {
    const invited = await call(base, 'POST', '/auth/invitations', {
      tenant: 'alpha',
      token: adminToken,
      body: { email, name: 'Someone', role },
    });
    expect(invited.status, JSON.stringify(invited.body)).to.equal(201);
    const accepted = await call(base, 'POST', '/auth/invitations/accept', {
      tenant: 'alpha',
      body: { token: invited.body.invitationToken, password: PASSWORD },
    });
    expect(accepted.status, JSON.stringify(accepted.body)).to.equal(200);
    return accepted.body;
  }

  async function login(email: string, password = PASSWORD, tenant = 'alpha') {
    return call(base, 'POST', '/auth/login', { tenant, body: { email, password } });
  }

  describe('setup of the first administrator', () => {
    it('when the setup token is used a second time, it answers 400 INVALID_ONE_TIME_TOKEN', async () => {
      await provision(harness.plane.db, 'charlie');
      const seeded = await seedAdmin(harness.plane.db, 'charlie', {
        email: 'a@c.example',
        name: 'A',
      });
      const first = await call(base, 'POST', '/auth/setup', {
        tenant: 'charlie',
        body: { token: seeded.setupToken, password: PASSWORD },
      });

      const second = await call(base, 'POST', '/auth/setup', {
        tenant: 'charlie',
        body: { token: seeded.setupToken, password: PASSWORD },
      });

      expect(first.status).to.equal(200);
      expect(second.status).to.equal(400);
      expect(second.body.code).to.equal('INVALID_ONE_TIME_TOKEN');
    });

    it('when the password is short or common, it says why and leaves the token unspent', async () => {
      await provision(harness.plane.db, 'delta');
      const seeded = await seedAdmin(harness.plane.db, 'delta', {
        email: 'a@d.example',
        name: 'A',
      });
      const setup = (password: string) =>
        call(base, 'POST', '/auth/setup', {
          tenant: 'delta',
          body: { token: seeded.setupToken, password },
        });

      const short = await setup('elevenchars');
      const common = await setup('1qaz2wsx3edc');
      const long = await setup('a long passphrase of many words '.repeat(4));

      expect([short.status, short.body.reason]).to.deep.equal([400, 'too_short']);
      expect([common.status, common.body.reason]).to.deep.equal([400, 'common']);
      expect(long.status).to.equal(200);
    });
  });

  describe('login', () => {
    it('answers an RS256 access token that the shared verifier accepts through the JWKS', async () => {
      const verifier = createTokenVerifier(
        { issuer: 'vextrus-auth', audience: 'vextrus-api' },
        remoteKeySource({ url: `${base}/.well-known/jwks.json` }),
      );

      const answer = await login('admin@alpha.example');
      const principal = await verifier.verify(answer.body.accessToken as string);
      const header = JSON.parse(
        Buffer.from(String(answer.body.accessToken).split('.')[0] ?? '', 'base64url').toString(),
      ) as { alg?: string };

      expect(answer.status).to.equal(200);
      expect(header.alg).to.equal('RS256');
      expect(answer.headers.get('cache-control')).to.equal('no-store');
      expect(answer.body.expiresIn).to.equal(900);
      expect(principal.tenant).to.equal('alpha');
      expect(principal.tenantId).to.equal(alpha.tenantId);
      expect(principal.roles).to.deep.equal(['tenant_admin']);
    });

    it('gives the same status and body for unknown email, wrong password, disabled user and unknown tenant', async () => {
      const disabled = await member('gone@alpha.example');
      await call(base, 'PATCH', `/auth/users/${(disabled.user as { id: string }).id}`, {
        tenant: 'alpha',
        token: adminToken,
        body: { status: 'disabled' },
      });

      const answers = [
        await login('nobody@alpha.example'),
        await login('admin@alpha.example', 'not the right password'),
        await login('gone@alpha.example'),
        await login('admin@alpha.example', PASSWORD, 'no-such-tenant'),
      ];

      for (const answer of answers) {
        expect(answer.status).to.equal(401);
        expect(comparable(answer.body)).to.deep.equal(comparable(answers[0]?.body ?? {}));
      }
      expect(answers[0]?.body.code).to.equal('INVALID_CREDENTIALS');
      const failed = await harness.audits(alpha.schema, 'auth.login.failed');
      expect(failed.map((a) => a.details?.reason)).to.include.members([
        'unknown_email',
        'wrong_password',
        'user_disabled',
      ]);
    });

    it('counts 50 parallel wrong passwords for one account exactly, checking only up to the limit', async () => {
      await member('target@alpha.example');

      const answers = await Promise.all(
        Array.from({ length: 50 }, () => login('target@alpha.example', 'wrong password!!')),
      );
      const [counter] = await harness.plane.db.sequelize.query<{ attempts: number }>(
        `SELECT attempts FROM ${alpha.schema}.login_throttle WHERE key = 'account:target@alpha.example'`,
        { type: QueryTypes.SELECT },
      );

      const statuses = answers.map((a) => a.status);
      expect(statuses.filter((s) => s === 401)).to.have.length(10);
      expect(statuses.filter((s) => s === 429)).to.have.length(40);
      expect(counter?.attempts).to.equal(50);
      expect(answers.find((a) => a.status === 429)?.headers.get('retry-after')).to.match(/^\d+$/);
      expect((await login('target@alpha.example')).status).to.equal(429);
    });

    it('without X-Tenant-ID, it answers 400 TENANT_REQUIRED', async () => {
      const answer = await call(base, 'POST', '/auth/login', {
        body: { email: 'admin@alpha.example', password: PASSWORD },
      });

      expect(answer.status).to.equal(400);
      expect(answer.body.code).to.equal('TENANT_REQUIRED');
    });

    it('the same email in two tenants is two users with their own passwords', async () => {
      await harness.tenantWithAdmin('echo', base, 'admin@alpha.example');

      const inAlpha = await login('admin@alpha.example', PASSWORD, 'alpha');
      const inEcho = await login('admin@alpha.example', PASSWORD, 'echo');

      expect(inAlpha.status).to.equal(200);
      expect(inEcho.status).to.equal(200);
      expect((inAlpha.body.user as { id: string }).id).to.not.equal(
        (inEcho.body.user as { id: string }).id,
      );
    });
  });

  describe('refresh tokens', () => {
    it('rotates r1→r2→r3; replaying r1 revokes the family so that r3 stops working', async () => {
      const r1 = (await login('admin@alpha.example')).body.refreshToken;
      const r2 = (
        await call(base, 'POST', '/auth/refresh', { tenant: 'alpha', body: { refreshToken: r1 } })
      ).body.refreshToken;
      const third = await call(base, 'POST', '/auth/refresh', {
        tenant: 'alpha',
        body: { refreshToken: r2 },
      });
      const r3 = third.body.refreshToken;

      const replay = await call(base, 'POST', '/auth/refresh', {
        tenant: 'alpha',
        body: { refreshToken: r1 },
      });
      const afterReplay = await call(base, 'POST', '/auth/refresh', {
        tenant: 'alpha',
        body: { refreshToken: r3 },
      });

      expect(third.status).to.equal(200);
      expect(new Set([r1, r2, r3]).size).to.equal(3);
      expect(replay.status).to.equal(401);
      expect(afterReplay.status).to.equal(401);
      expect(afterReplay.body.code).to.equal('INVALID_REFRESH_TOKEN');
      expect(await harness.audits(alpha.schema, 'auth.token.reuse_detected')).to.have.length(1);
    });

    it('after logout, the refresh token no longer refreshes', async () => {
      const r1 = (await login('admin@alpha.example')).body.refreshToken;

      const out = await call(base, 'POST', '/auth/logout', {
        tenant: 'alpha',
        body: { refreshToken: r1 },
      });
      const refresh = await call(base, 'POST', '/auth/refresh', {
        tenant: 'alpha',
        body: { refreshToken: r1 },
      });

      expect(out.status).to.equal(204);
      expect(refresh.status).to.equal(401);
      expect((await harness.audits(alpha.schema, 'auth.logout')).length).to.be.at.least(1);
    });

    it('a disabled user can neither refresh nor log in, and its token no longer reads /auth/me', async () => {
      const session = await member('soon-disabled@alpha.example');
      const id = (session.user as { id: string }).id;

      const disable = await call(base, 'PATCH', `/auth/users/${id}`, {
        tenant: 'alpha',
        token: adminToken,
        body: { status: 'disabled' },
      });
      const refresh = await call(base, 'POST', '/auth/refresh', {
        tenant: 'alpha',
        body: { refreshToken: session.refreshToken },
      });
      const me = await call(base, 'GET', '/auth/me', {
        tenant: 'alpha',
        token: session.accessToken as string,
      });

      expect(disable.status).to.equal(200);
      expect(refresh.status).to.equal(401);
      expect((await login('soon-disabled@alpha.example')).status).to.equal(401);
      expect(me.status).to.equal(401);
      expect(await harness.audits(alpha.schema, 'auth.user.disabled')).to.have.length.at.least(1);
    });
  });

  describe('methods', () => {
    it('when a known path is asked with a method it lacks, it answers 405 with Allow', async () => {
      const login = await call(base, 'GET', '/auth/login', { tenant: 'alpha' });
      const unknown = await call(base, 'GET', '/auth/nowhere', { tenant: 'alpha' });

      expect(login.status).to.equal(405);
      expect(login.body.code).to.equal('METHOD_NOT_ALLOWED');
      expect(login.headers.get('allow')).to.equal('POST');
      expect(unknown.status).to.equal(404);
      expect(unknown.body.code).to.equal('ROUTE_NOT_FOUND');
    });
  });

  describe('tenant agreement and administration', () => {
    it('when the token belongs to another tenant, it answers 403 TENANT_MISMATCH and audits it', async () => {
      const answer = await call(base, 'GET', '/auth/me', { tenant: 'bravo', token: adminToken });

      expect(answer.status).to.equal(403);
      expect(answer.body.code).to.equal('TENANT_MISMATCH');
      expect(await harness.audits(alpha.schema, 'access.denied')).to.have.length.at.least(1);
    });

    it('a member may not invite (403) nor list users (403)', async () => {
      const session = await member('plain@alpha.example');
      const token = session.accessToken as string;

      const invite = await call(base, 'POST', '/auth/invitations', {
        tenant: 'alpha',
        token,
        body: { email: 'x@alpha.example', name: 'X', role: 'member' },
      });
      const list = await call(base, 'GET', '/auth/users', { tenant: 'alpha', token });

      expect(invite.status).to.equal(403);
      expect(list.status).to.equal(403);
    });

    it('a role change shows in the next refreshed access token and is audited', async () => {
      const session = await member('promoted@alpha.example');
      const id = (session.user as { id: string }).id;

      await call(base, 'PATCH', `/auth/users/${id}`, {
        tenant: 'alpha',
        token: adminToken,
        body: { role: 'manager' },
      });
      const refreshed = await call(base, 'POST', '/auth/refresh', {
        tenant: 'alpha',
        body: { refreshToken: session.refreshToken },
      });
      const payload = JSON.parse(
        Buffer.from(
          (refreshed.body.accessToken as string).split('.')[1] ?? '',
          'base64url',
        ).toString(),
      ) as { roles: string[] };

      expect(payload.roles).to.deep.equal(['manager']);
      expect(await harness.audits(alpha.schema, 'auth.user.role_changed')).to.have.length.at.least(
        1,
      );
    });

    it('the last active administrator cannot disable itself (409 LAST_ADMIN)', async () => {
      const me = await call(base, 'GET', '/auth/me', { tenant: 'alpha', token: adminToken });

      const answer = await call(base, 'PATCH', `/auth/users/${me.body.id as string}`, {
        tenant: 'alpha',
        token: adminToken,
        body: { status: 'disabled' },
      });

      expect(answer.status).to.equal(409);
      expect(answer.body.code).to.equal('LAST_ADMIN');
    });

    it('inviting an email that is already an active user answers 409 EMAIL_TAKEN', async () => {
      const answer = await call(base, 'POST', '/auth/invitations', {
        tenant: 'alpha',
        token: adminToken,
        body: { email: 'Admin@alpha.example', name: 'Again', role: 'member' },
      });

      expect(answer.status).to.equal(409);
      expect(answer.body.code).to.equal('EMAIL_TAKEN');
    });
  });

  describe('password change', () => {
    it('needs the current password, then ends every session and accepts only the new one', async () => {
      const session = await member('changer@alpha.example');
      const token = session.accessToken as string;

      const wrong = await call(base, 'POST', '/auth/password', {
        tenant: 'alpha',
        token,
        body: { currentPassword: 'not it at all', newPassword: 'a brand new passphrase' },
      });
      const right = await call(base, 'POST', '/auth/password', {
        tenant: 'alpha',
        token,
        body: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase' },
      });
      const oldRefresh = await call(base, 'POST', '/auth/refresh', {
        tenant: 'alpha',
        body: { refreshToken: session.refreshToken },
      });

      expect(wrong.status).to.equal(403);
      expect(right.status).to.equal(204);
      expect(oldRefresh.status).to.equal(401);
      expect((await login('changer@alpha.example')).status).to.equal(401);
      expect((await login('changer@alpha.example', 'a brand new passphrase')).status).to.equal(200);
      expect(await harness.audits(alpha.schema, 'auth.password.changed')).to.have.length(1);
    });
  });

  it('rows written through the service are only visible in their own tenant', async () => {
    const visible = await withTenantTransaction(service.runtime.sequelize, alpha, () =>
      service.runtime.sequelize.query<{ email: string }>('SELECT email FROM users', {
        type: QueryTypes.SELECT,
      }),
    );

    expect(visible.map((row) => row.email)).to.include('admin@alpha.example');
    expect(visible.map((row) => row.email)).to.not.include('admin@bravo.example');
  });
});
