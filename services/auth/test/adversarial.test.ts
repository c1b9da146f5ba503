import { createHmac, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { QueryTypes } from 'sequelize';
import { deprovision, provision, seedAdmin, type ProvisionResult } from '@vextrus/migrations';
import type { RunningService } from '@vextrus/shared';
import type { AuthConfig } from '../src/config.js';
import { PASSWORD, call, createAuthHarness, type Answer, type AuthHarness } from './support.js';

/** An answer whose body may be anything: the raw text and its media type. */
interface RawAnswer {
  status: number;
  type: string;
  text: string;
  headers: Headers;
}

/** One request with a body sent as given (no JSON.stringify), for malformed input. */
async function raw(
  base: string,
  method: string,
  path: string,
  options: { tenant?: string; token?: string; body?: string; headers?: Record<string, string> },
): Promise<RawAnswer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.tenant) headers['X-Tenant-ID'] = options.tenant;
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  const response = await fetch(`${base}${path}`, { method, headers, body: options.body });
  return {
    status: response.status,
    type: response.headers.get('content-type') ?? '',
    text: await response.text(),
    headers: response.headers,
  };
}

/** Asserts a refusal: problem+json with this status and code. */
function expectProblem(answer: RawAnswer | Answer, status: number, code: string): void {
  const body =
    'text' in answer ? (JSON.parse(answer.text) as Record<string, unknown>) : answer.body;
  const type = 'type' in answer ? answer.type : (answer.headers.get('content-type') ?? '');
  expect([answer.status, body.code], JSON.stringify(body)).to.deep.equal([status, code]);
  expect(type).to.match(/^application\/problem\+json/);
}

function b64(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('auth service under attack', function () {
  this.timeout(60_000);
  let harness: AuthHarness;
  let service: RunningService<AuthConfig>;
  let base: string;
  let alpha: ProvisionResult;
  let bravo: ProvisionResult;
  let adminToken: string;
  let bravoAdminToken: string;
  let signingKey: { kid: string; privateKey: KeyObject; publicKey: KeyObject };

  before(async () => {
    harness = await createAuthHarness('auth_adversarial');
    ({ service } = await harness.start({
      AUTH_LOGIN_ACCOUNT_LIMIT: '3',
      AUTH_LOGIN_ADDRESS_LIMIT: '10000',
    }));
    base = service.url;
    const a = await harness.tenantWithAdmin('alpha', base);
    alpha = a.tenant;
    adminToken = a.session.accessToken as string;
    const b = await harness.tenantWithAdmin('bravo', base);
    bravo = b.tenant;
    bravoAdminToken = b.session.accessToken as string;
    const [file] = (await readdir(harness.keysDir)).filter((name) => name.endsWith('.pem'));
    const privateKey = createPrivateKey(await readFile(join(harness.keysDir, file ?? ''), 'utf8'));
    const kid = jwt.decode(adminToken, { complete: true })?.header.kid ?? '';
    signingKey = { kid, privateKey, publicKey: createPublicKey(privateKey) };
  });
  after(async () => harness.close());

  /** Invites a user into a tenant and accepts the invitation; returns the new session. */
  async function member(
    email: string,
    role = 'member',
    tenant = 'alpha',
    token = adminToken,
  ): Promise<Record<string, unknown>> {
    const invited = await call(base, 'POST', '/auth/invitations', {
      tenant,
      token,
      body: { email, name: 'Someone', role },
    });
    expect(invited.status, JSON.stringify(invited.body)).to.equal(201);
    const accepted = await call(base, 'POST', '/auth/invitations/accept', {
      tenant,
      body: { token: invited.body.invitationToken, password: PASSWORD },
    });
    expect(accepted.status, JSON.stringify(accepted.body)).to.equal(200);
    return accepted.body;
  }

  function login(email: string, password = PASSWORD, tenant = 'alpha'): Promise<Answer> {
    return call(base, 'POST', '/auth/login', { tenant, body: { email, password } });
  }

  function idOf(session: Record<string, unknown>): string {
    return (session.user as { id: string }).id;
  }

  describe('login bodies', () => {
    const post = (body: string, type = 'application/json') =>
      raw(base, 'POST', '/auth/login', {
        tenant: 'alpha',
        body,
        headers: { 'Content-Type': type },
      });

    it('a body that is not JSON answers 415, malformed JSON 400 MALFORMED_JSON', async () => {
      expectProblem(await post('email=a&password=b', 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE');
      expectProblem(await post('{"email": "a@b", "password": '), 400, 'MALFORMED_JSON');
      expectProblem(await post('"a string"'), 400, 'MALFORMED_JSON');
    });

    it('JSON of the wrong shape or types answers 400 VALIDATION_FAILED', async () => {
      expectProblem(await post('[]'), 400, 'VALIDATION_FAILED');
      expectProblem(await post('{}'), 400, 'VALIDATION_FAILED');
      expectProblem(await post('{"email": 1, "password": true}'), 400, 'VALIDATION_FAILED');
      expectProblem(
        await post('{"email": ["admin@alpha.example"], "password": {"a": 1}}'),
        400,
        'VALIDATION_FAILED',
      );
      expectProblem(
        await post(`{"email": "admin@alpha.example", "password": "${'x'.repeat(1025)}"}`),
        400,
        'VALIDATION_FAILED',
      );
    });

    it('credentials inside __proto__ are not read as the body fields', async () => {
      const answer = await post(
        `{"__proto__": {"email": "admin@alpha.example", "password": "${PASSWORD}"}}`,
      );

      expectProblem(answer, 400, 'VALIDATION_FAILED');
    });

    it('of duplicated keys the last counts, as JSON.parse reads them', async () => {
      const answer = await post(
        `{"email": "nobody@alpha.example", "email": "admin@alpha.example",
          "password": "wrong", "password": "${PASSWORD}"}`,
      );

      expect(answer.status, answer.text).to.equal(200);
    });

    it('a body beyond the limit answers 413 PAYLOAD_TOO_LARGE', async () => {
      const answer = await post(
        JSON.stringify({ email: 'a@b', password: 'x', padding: 'y'.repeat(200 * 1024) }),
      );

      expectProblem(answer, 413, 'PAYLOAD_TOO_LARGE');
    });

    it('an email with a NUL character or a lone surrogate matches nobody: 401, audited', async () => {
      const before = (await harness.audits(alpha.schema, 'auth.login.failed')).length;

      const nul = await call(base, 'POST', '/auth/login', {
        tenant: 'alpha',
        body: { email: 'admin@alpha.example\u0000', password: PASSWORD },
      });
      const surrogate = await post(
        `{"email": "admin\\ud800@alpha.example", "password": "${PASSWORD}"}`,
      );
      const failed = (await harness.audits(alpha.schema, 'auth.login.failed')).slice(before);

      expectProblem(nul, 401, 'INVALID_CREDENTIALS');
      expectProblem(surrogate, 401, 'INVALID_CREDENTIALS');
      expect(failed.map((a) => a.details?.reason)).to.deep.equal([
        'unknown_email',
        'unknown_email',
      ]);
    });
    it('an email of spaces only answers 400 VALIDATION_FAILED, not 500', async () => {
      expectProblem(await login('   ', 'wrong password!!'), 400, 'VALIDATION_FAILED');
      expectProblem(await login('\u00a0\t', 'wrong password!!'), 400, 'VALIDATION_FAILED');
    });

    it('an email that lowercases beyond 254 characters answers 400, not 500', async () => {
      // U+0130 (İ) is one UTF-16 unit that lowercases to two (i + combining dot above).
      const email = `${'\u0130'.repeat(240)}@alpha.example`;

      expectProblem(await login(email, 'wrong password!!'), 400, 'VALIDATION_FAILED');
    });
  });

  describe('login throttling', () => {
    it('case, whitespace and Unicode variants of one email share the account counter', async () => {
      await member('victim@alpha.example');
      const variants = [
        'victim@alpha.example',
        'VICTIM@ALPHA.EXAMPLE',
        '  Victim@Alpha.Example\t',
        '\u00a0victim@alpha.example\ufeff',
        'Victim@alpha.example\u2028',
      ];

      const answers = [];
      for (const email of variants) answers.push(await login(email, 'wrong password!!'));
      const right = await login('VICTIM@alpha.example ');

      expect(answers.map((a) => a.status)).to.deep.equal([401, 401, 401, 429, 429]);
      expectProblem(right, 429, 'TOO_MANY_ATTEMPTS');
      expect(await harness.audits(alpha.schema, 'auth.login.locked')).to.have.length.at.least(1);
      const failed = await harness.audits(alpha.schema, 'auth.login.failed');
      expect(failed.filter((a) => a.details?.email === 'victim@alpha.example')).to.have.length(3);
    });

    it('the Kelvin sign lowercases to k, so it cannot open a second counter', async () => {
      await member('kilo@alpha.example');

      const answers = [];
      for (const email of ['kilo@alpha.example', '\u212Ailo@alpha.example']) {
        for (let i = 0; i < 2; i++) answers.push(await login(email, 'wrong password!!'));
      }

      expect(answers.map((a) => a.status)).to.deep.equal([401, 401, 401, 429]);
    });
    it('a spoofed X-Forwarded-For does not escape the address counter (no proxy is trusted)', async () => {
      const { service: strict } = await harness.start({ AUTH_LOGIN_ADDRESS_LIMIT: '3' });
      await harness.tenantWithAdmin('spoofed', strict.url);

      const statuses = [];
      for (let i = 0; i < 5; i++) {
        const answer = await call(strict.url, 'POST', '/auth/login', {
          tenant: 'spoofed',
          headers: { 'X-Forwarded-For': `203.0.113.${i}` },
          body: { email: `nobody-${i}@spoofed.example`, password: 'wrong password!!' },
        });
        statuses.push(answer.status);
      }

      expect(statuses).to.deep.equal([401, 401, 401, 429, 429]);
      const locked = await harness.audits('tenant_spoofed', 'auth.login.locked');
      expect(locked.map((a) => a.details?.scope)).to.deep.equal(['address']);
    });

    // The address counters are per tenant by design: many unrelated users share an address
    // (offices, carrier-grade NAT), and one tenant's failed logins must not lock another
    // tenant's users out. A spray across tenants from one address is therefore throttled per
    // tenant only (README, Known shortcomings).
    it("one tenant's failures from an address do not throttle another tenant's logins from it", async () => {
      const { service: strict } = await harness.start({ AUTH_LOGIN_ADDRESS_LIMIT: '3' });
      await harness.tenantWithAdmin('spray-one', strict.url);
      await harness.tenantWithAdmin('spray-two', strict.url);
      const login = (tenant: string, password: string) =>
        call(strict.url, 'POST', '/auth/login', {
          tenant,
          body: { email: `admin@${tenant}.example`, password },
        });

      const statuses = [];
      for (let i = 0; i < 5; i++)
        statuses.push((await login('spray-one', 'wrong password!!')).status);
      const other = await login('spray-two', PASSWORD);

      expect(statuses).to.deep.equal([401, 401, 401, 429, 429]);
      expect(other.status).to.equal(200);
    });

    it('wrong current passwords of /auth/password lock the account like logins, audited', async () => {
      const session = await member('forgetful@alpha.example');
      const change = () =>
        call(base, 'POST', '/auth/password', {
          tenant: 'alpha',
          token: session.accessToken as string,
          body: { currentPassword: 'not my password', newPassword: 'a brand new passphrase' },
        });

      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await change()).status);
      const failed = await harness.audits(alpha.schema, 'auth.password.change_failed');
      const locked = await harness.audits(alpha.schema, 'auth.login.locked');

      expect(statuses).to.deep.equal([403, 403, 403, 429]);
      expectProblem(await login('forgetful@alpha.example'), 429, 'TOO_MANY_ATTEMPTS');
      expect(failed.filter((a) => a.resource_id === idOf(session))).to.have.length(3);
      expect(locked.filter((a) => a.details?.email === 'forgetful@alpha.example')).to.have.length(
        1,
      );
    });
  });

  describe('refresh tokens', () => {
    const refresh = (refreshToken: unknown, tenant = 'alpha') =>
      call(base, 'POST', '/auth/refresh', { tenant, body: { refreshToken } });

    it('five parallel refreshes of one token: at most one succeeds, the family ends', async () => {
      const session = (await login('admin@alpha.example')).body;

      const answers = await Promise.all(
        Array.from({ length: 5 }, () => refresh(session.refreshToken)),
      );
      const winner = answers.find((a) => a.status === 200);
      const after = winner ? await refresh(winner.body.refreshToken) : undefined;

      expect(answers.filter((a) => a.status === 200)).to.have.length.at.most(1);
      for (const answer of answers.filter((a) => a.status !== 200)) {
        expectProblem(answer, 401, 'INVALID_REFRESH_TOKEN');
      }
      if (after) expectProblem(after, 401, 'INVALID_REFRESH_TOKEN');
      expect(
        await harness.audits(alpha.schema, 'auth.token.reuse_detected'),
      ).to.have.length.at.least(1);
    });

    it("another tenant's refresh token through this tenant's X-Tenant-ID is unknown and stays valid", async () => {
      const session = (await login('admin@alpha.example')).body;

      const crossed = await refresh(session.refreshToken, 'bravo');
      const loggedOut = await call(base, 'POST', '/auth/logout', {
        tenant: 'bravo',
        body: { refreshToken: session.refreshToken },
      });
      const own = await refresh(session.refreshToken, 'alpha');

      expectProblem(crossed, 401, 'INVALID_REFRESH_TOKEN');
      expect(loggedOut.status).to.equal(204);
      expect(own.status).to.equal(200);
    });

    it('a refresh token used as an access token answers 401 UNAUTHENTICATED', async () => {
      const session = (await login('admin@alpha.example')).body;

      const me = await call(base, 'GET', '/auth/me', {
        tenant: 'alpha',
        token: session.refreshToken as string,
      });

      expectProblem(me, 401, 'UNAUTHENTICATED');
    });

    it('an access token used as a refresh token answers 401 INVALID_REFRESH_TOKEN', async () => {
      const session = (await login('admin@alpha.example')).body;

      const answer = await refresh(session.accessToken);

      expectProblem(answer, 401, 'INVALID_REFRESH_TOKEN');
    });

    it('a malformed refresh token answers 401, one of another type 400', async () => {
      expectProblem(await refresh('short'), 401, 'INVALID_REFRESH_TOKEN');
      expectProblem(await refresh(42), 400, 'VALIDATION_FAILED');
      expectProblem(await refresh(null), 400, 'VALIDATION_FAILED');
    });
  });

  describe('setup and invitation tokens', () => {
    async function seeded(slug: string): Promise<string> {
      await provision(harness.plane.db, slug);
      const seeded = await seedAdmin(harness.plane.db, slug, {
        email: `a@${slug}.example`,
        name: 'A',
      });
      if (!seeded.setupToken) throw new Error(`seed-admin gave ${slug} no setup token`);
      return seeded.setupToken;
    }
    const setup = (tenant: string, token: unknown, password = PASSWORD) =>
      call(base, 'POST', '/auth/setup', { tenant, body: { token, password } });

    it('two parallel uses of one setup token: one session, one 400 INVALID_ONE_TIME_TOKEN', async () => {
      const token = await seeded('race');

      const answers = await Promise.all([setup('race', token), setup('race', token)]);

      expect(answers.map((a) => a.status).sort()).to.deep.equal([200, 400]);
      expectProblem(answers.find((a) => a.status === 400) as Answer, 400, 'INVALID_ONE_TIME_TOKEN');
    });

    it("a setup token through another tenant's X-Tenant-ID is unknown and stays usable", async () => {
      const token = await seeded('crossed');

      const elsewhere = await setup('alpha', token);
      const invitation = await call(base, 'POST', '/auth/invitations/accept', {
        tenant: 'crossed',
        body: { token, password: PASSWORD },
      });
      const own = await setup('crossed', token);

      expectProblem(elsewhere, 400, 'INVALID_ONE_TIME_TOKEN');
      expectProblem(invitation, 400, 'INVALID_ONE_TIME_TOKEN');
      expect(own.status).to.equal(200);
    });

    it('a truncated, extended, expired or mistyped token answers 400', async () => {
      const token = await seeded('expired');

      const truncated = await setup('expired', token.slice(0, -1));
      const extended = await setup('expired', `${token}A`);
      const mistyped = await setup('expired', { token });
      await harness.plane.db.sequelize.query(
        `UPDATE tenant_expired.one_time_tokens
            SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day'`,
      );
      const expired = await setup('expired', token);

      expectProblem(truncated, 400, 'INVALID_ONE_TIME_TOKEN');
      expectProblem(extended, 400, 'INVALID_ONE_TIME_TOKEN');
      expectProblem(mistyped, 400, 'VALIDATION_FAILED');
      expectProblem(expired, 400, 'INVALID_ONE_TIME_TOKEN');
    });

    it('an accepted invitation cannot be replayed, even in parallel', async () => {
      const invited = await call(base, 'POST', '/auth/invitations', {
        tenant: 'alpha',
        token: adminToken,
        body: { email: 'replay@alpha.example', name: 'R', role: 'member' },
      });
      const accept = () =>
        call(base, 'POST', '/auth/invitations/accept', {
          tenant: 'alpha',
          body: { token: invited.body.invitationToken, password: PASSWORD },
        });

      const first = await Promise.all([accept(), accept(), accept()]);
      const later = await accept();

      expect(first.map((a) => a.status).sort()).to.deep.equal([200, 400, 400]);
      expectProblem(later, 400, 'INVALID_ONE_TIME_TOKEN');
    });

    it('a suspended tenant redeems no setup token', async () => {
      const token = await seeded('suspended');
      await harness.plane.db.sequelize.query(
        "UPDATE platform.tenants SET status = 'suspended' WHERE slug = 'suspended'",
      );

      expectProblem(await setup('suspended', token), 400, 'INVALID_ONE_TIME_TOKEN');
      expectProblem(
        await login('a@suspended.example', PASSWORD, 'suspended'),
        401,
        'INVALID_CREDENTIALS',
      );
    });
  });

  describe('access tokens', () => {
    const now = () => Math.floor(Date.now() / 1000);
    function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
      const decoded = jwt.decode(adminToken) as Record<string, unknown>;
      return { ...decoded, iat: now(), exp: now() + 600, ...overrides };
    }
    function forged(
      payload: Record<string, unknown>,
      header: Record<string, unknown> = {},
    ): string {
      return jwt.sign(payload, signingKey.privateKey, {
        algorithm: 'RS256',
        keyid: signingKey.kid,
        header: { alg: 'RS256', kid: signingKey.kid, ...header },
      });
    }
    const me = (token: string, tenant: string | undefined = 'alpha') =>
      call(base, 'GET', '/auth/me', { tenant, token });

    it('a token signed by its own key passes, which the cases below alter one thing of', async () => {
      expect((await me(forged(claims()))).status).to.equal(200);
    });

    it('alg none, HS256 keyed with the public key, unknown kid, other audience or issuer: 401', async () => {
      const payload = claims();
      const none = `${b64({ alg: 'none', typ: 'JWT', kid: signingKey.kid })}.${b64(payload)}.`;
      const hsInput = `${b64({ alg: 'HS256', typ: 'JWT', kid: signingKey.kid })}.${b64(payload)}`;
      const pem = signingKey.publicKey.export({ format: 'pem', type: 'spki' });
      const hs = `${hsInput}.${createHmac('sha256', pem).update(hsInput).digest('base64url')}`;
      const cases = {
        none,
        hs,
        kid: forged(payload, { kid: 'another-key' }),
        audience: forged(claims({ aud: 'someone-else' })),
        issuer: forged(claims({ iss: 'someone-else' })),
        expired: forged(claims({ iat: now() - 3600, exp: now() - 60 })),
        roles: forged(claims({ roles: ['root'] })),
      };

      for (const [name, token] of Object.entries(cases)) {
        const answer = await me(token);
        expect(answer.status, name).to.equal(401);
        expectProblem(answer, 401, 'UNAUTHENTICATED');
        expect(answer.headers.get('www-authenticate'), name).to.match(/^Bearer/);
      }
    });

    it('a token of alpha addressed to bravo, or without X-Tenant-ID, answers 403 TENANT_MISMATCH', async () => {
      expectProblem(await me(adminToken, 'bravo'), 403, 'TENANT_MISMATCH');
      const missing = await call(base, 'GET', '/auth/me', { token: adminToken });

      expectProblem(missing, 403, 'TENANT_MISMATCH');
    });

    it("a token claiming bravo's slug with alpha's tenant id answers 403 TENANT_UNAVAILABLE", async () => {
      const token = forged(claims({ tenant: 'bravo' }));

      expectProblem(await me(token, 'bravo'), 403, 'TENANT_UNAVAILABLE');
    });

    it("a token of a slug that now names another tenant writes nothing into that tenant's log", async () => {
      // What a token of a deleted tenant looks like once its slug is given to a new tenant.
      const token = forged(claims({ tenant: 'bravo' }));
      const logged = async () =>
        (await harness.audits(bravo.schema, 'access.denied')).length +
        (await harness.audits(bravo.schema, 'auth.tenant.refused')).length;
      const before = await logged();

      expectProblem(await me(token, 'alpha'), 403, 'TENANT_MISMATCH');
      expectProblem(await me(token, 'bravo'), 403, 'TENANT_UNAVAILABLE');

      expect(await logged()).to.equal(before);
    });

    it('a token of a suspended tenant answers 403 TENANT_UNAVAILABLE', async () => {
      const held = await provision(harness.plane.db, 'held');
      await harness.plane.db.sequelize.query(
        "UPDATE platform.tenants SET status = 'suspended' WHERE slug = 'held'",
      );
      const token = forged(claims({ tenant: 'held', tid: held.tenantId }));

      expectProblem(await me(token, 'held'), 403, 'TENANT_UNAVAILABLE');
    });
  });

  describe('a tenant retained or deleted while its directory entry is still cached', () => {
    for (const mode of ['retain', 'delete'] as const) {
      it(`after ${mode}: login 401, refresh 401, setup 400, the old token 403, never 500`, async () => {
        const slug = `gone-${mode}`;
        const { session } = await harness.tenantWithAdmin(slug, base);
        const email = `admin@${slug}.example`;
        expect((await login(email, PASSWORD, slug)).status).to.equal(200);
        await deprovision(harness.plane.db, slug, mode);

        const loggedIn = await login(email, PASSWORD, slug);
        const refreshed = await call(base, 'POST', '/auth/refresh', {
          tenant: slug,
          body: { refreshToken: session.refreshToken },
        });
        const loggedOut = await call(base, 'POST', '/auth/logout', {
          tenant: slug,
          body: { refreshToken: session.refreshToken },
        });
        const setup = await call(base, 'POST', '/auth/setup', {
          tenant: slug,
          body: { token: 'A'.repeat(43), password: PASSWORD },
        });
        const me = await call(base, 'GET', '/auth/me', {
          tenant: slug,
          token: session.accessToken as string,
        });

        expectProblem(loggedIn, 401, 'INVALID_CREDENTIALS');
        expectProblem(refreshed, 401, 'INVALID_REFRESH_TOKEN');
        expect(loggedOut.status).to.equal(204);
        expectProblem(setup, 400, 'INVALID_ONE_TIME_TOKEN');
        expectProblem(me, 403, 'TENANT_UNAVAILABLE');
      });
    }

    it('after delete and re-creation under the same slug: the new admin sets up and logs in, the old tokens are refused, never 500', async () => {
      const slug = 'reborn';
      const email = `admin@${slug}.example`;
      const { session } = await harness.tenantWithAdmin(slug, base);
      expect((await login(email, PASSWORD, slug)).status).to.equal(200);
      await deprovision(harness.plane.db, slug, 'delete');
      await provision(harness.plane.db, slug);
      const seeded = await seedAdmin(harness.plane.db, slug, { email, name: 'New admin' });

      const oldMe = await call(base, 'GET', '/auth/me', {
        tenant: slug,
        token: session.accessToken as string,
      });
      const oldRefresh = await call(base, 'POST', '/auth/refresh', {
        tenant: slug,
        body: { refreshToken: session.refreshToken },
      });
      const setup = await call(base, 'POST', '/auth/setup', {
        tenant: slug,
        body: { token: seeded.setupToken, password: PASSWORD },
      });
      const loggedIn = await login(email, PASSWORD, slug);
      const newMe = await call(base, 'GET', '/auth/me', {
        tenant: slug,
        token: setup.body.accessToken as string,
      });
      const oldMeAgain = await call(base, 'GET', '/auth/me', {
        tenant: slug,
        token: session.accessToken as string,
      });

      // While the directory still holds the deleted tenant, the old token finds no user there.
      expect(`${oldMe.status} ${String(oldMe.body.code)}`).to.be.oneOf([
        '401 UNAUTHENTICATED',
        '403 TENANT_UNAVAILABLE',
      ]);
      expectProblem(oldRefresh, 401, 'INVALID_REFRESH_TOKEN');
      expect(setup.status, JSON.stringify(setup.body)).to.equal(200);
      expect(loggedIn.status, JSON.stringify(loggedIn.body)).to.equal(200);
      expect(newMe.status, JSON.stringify(newMe.body)).to.equal(200);
      expectProblem(oldMeAgain, 403, 'TENANT_UNAVAILABLE');
    });

    it("after re-creation, replicas that still cache the deleted tenant rotate and revoke the new tenant's refresh tokens", async () => {
      const slug = 'reborn-twice';
      const email = `admin@${slug}.example`;
      const { service: replica } = await harness.start();
      const { service: other } = await harness.start();
      const { session } = await harness.tenantWithAdmin(slug, base);
      // The replicas learn the tenant as it is before the deletion.
      const warmed = await call(replica.url, 'POST', '/auth/refresh', {
        tenant: slug,
        body: { refreshToken: session.refreshToken },
      });
      expect(warmed.status, JSON.stringify(warmed.body)).to.equal(200);
      const warmedOther = await call(other.url, 'POST', '/auth/refresh', {
        tenant: slug,
        body: { refreshToken: warmed.body.refreshToken },
      });
      expect(warmedOther.status, JSON.stringify(warmedOther.body)).to.equal(200);
      await deprovision(harness.plane.db, slug, 'delete');
      await provision(harness.plane.db, slug);
      const seeded = await seedAdmin(harness.plane.db, slug, { email, name: 'New admin' });
      const setup = await call(base, 'POST', '/auth/setup', {
        tenant: slug,
        body: { token: seeded.setupToken, password: PASSWORD },
      });
      expect(setup.status, JSON.stringify(setup.body)).to.equal(200);

      const rotated = await call(replica.url, 'POST', '/auth/refresh', {
        tenant: slug,
        body: { refreshToken: setup.body.refreshToken },
      });
      const old = await call(replica.url, 'POST', '/auth/refresh', {
        tenant: slug,
        body: { refreshToken: warmedOther.body.refreshToken },
      });
      const loggedIn = await login(email, PASSWORD, slug);
      const loggedOut = await call(other.url, 'POST', '/auth/logout', {
        tenant: slug,
        body: { refreshToken: loggedIn.body.refreshToken },
      });
      const afterLogout = await call(base, 'POST', '/auth/refresh', {
        tenant: slug,
        body: { refreshToken: loggedIn.body.refreshToken },
      });

      expect(rotated.status, JSON.stringify(rotated.body)).to.equal(200);
      expectProblem(old, 401, 'INVALID_REFRESH_TOKEN');
      expect(loggedOut.status).to.equal(204);
      expectProblem(afterLogout, 401, 'INVALID_REFRESH_TOKEN');
    });
  });

  describe('overload and lost connections', () => {
    it('logins refused for a full argon2 queue (503) do not count against the account', async () => {
      const { service: busy } = await harness.start({
        AUTH_HASH_CONCURRENCY: '1',
        AUTH_HASH_QUEUE_LIMIT: '0',
        AUTH_LOGIN_ACCOUNT_LIMIT: '3',
      });
      await harness.tenantWithAdmin('busy', busy.url);
      const attempt = () =>
        call(busy.url, 'POST', '/auth/login', {
          tenant: 'busy',
          body: { email: 'admin@busy.example', password: 'wrong password!!' },
        });

      const burst = await Promise.all(Array.from({ length: 6 }, attempt));
      const busyAnswers = burst.filter((a) => a.status === 503);
      const [counter] = await harness.plane.db.sequelize.query<{ attempts: number }>(
        "SELECT attempts FROM tenant_busy.login_throttle WHERE key = 'account:admin@busy.example'",
        { type: QueryTypes.SELECT },
      );

      // Each attempt is counted before its check; one refused for the full queue is given back.
      for (const answer of burst) {
        const code = { 401: 'INVALID_CREDENTIALS', 429: 'TOO_MANY_ATTEMPTS' }[answer.status];
        expectProblem(answer, answer.status, code ?? 'PASSWORD_CHECKS_BUSY');
      }
      expect(busyAnswers).to.have.length.at.least(1);
      expect(busyAnswers[0]?.headers.get('retry-after')).to.equal('1');
      expect(counter?.attempts).to.equal(burst.length - busyAnswers.length);
    });

    it('after its database connections were killed, the service answers again, never 500', async () => {
      const { service: fragile } = await harness.start();
      await harness.tenantWithAdmin('fragile', fragile.url);
      const ok = await call(fragile.url, 'POST', '/auth/login', {
        tenant: 'fragile',
        body: { email: 'admin@fragile.example', password: PASSWORD },
      });
      expect(ok.status).to.equal(200);
      await harness.plane.db.sequelize.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND usename NOT IN (current_user)`,
      );

      const statuses = [];
      for (let i = 0; i < 4; i++) {
        const answer = await call(fragile.url, 'POST', '/auth/refresh', {
          tenant: 'fragile',
          body: { refreshToken: ok.body.refreshToken },
        });
        statuses.push(answer.status);
        if (answer.status === 200) break;
        expectProblem(answer, 503, 'UNAVAILABLE');
      }

      expect(statuses.at(-1)).to.equal(200);
    });
  });

  describe('user administration', () => {
    const patch = (id: string, body: unknown, token = adminToken, tenant = 'alpha') =>
      call(base, 'PATCH', `/auth/users/${id}`, { tenant, token, body });

    it('a member cannot change roles, its own included (403 FORBIDDEN)', async () => {
      const session = await member('climber@alpha.example');

      const answer = await patch(
        idOf(session),
        { role: 'tenant_admin' },
        session.accessToken as string,
      );

      expectProblem(answer, 403, 'FORBIDDEN');
    });

    it("alpha's admin cannot change bravo's users: 404, and bravo's user is unchanged", async () => {
      const bravoAdmin = await call(base, 'GET', '/auth/me', {
        tenant: 'bravo',
        token: bravoAdminToken,
      });
      const id = bravoAdmin.body.id as string;

      const answer = await patch(id, { status: 'disabled' });
      const [row] = await harness.plane.db.sequelize.query<{ status: string }>(
        `SELECT status FROM ${bravo.schema}.users WHERE id = $1`,
        { bind: [id], type: QueryTypes.SELECT },
      );

      expectProblem(answer, 404, 'USER_NOT_FOUND');
      expect(row?.status).to.equal('active');
    });

    it('a body with unknown, prototype or wrongly typed members answers 400 VALIDATION_FAILED', async () => {
      const session = await member('target-of-patch@alpha.example');
      const id = idOf(session);
      const send = (body: string) =>
        raw(base, 'PATCH', `/auth/users/${id}`, {
          tenant: 'alpha',
          token: adminToken,
          body,
          headers: { 'Content-Type': 'application/json' },
        });

      expectProblem(
        await send('{"__proto__": {"role": "tenant_admin"}}'),
        400,
        'VALIDATION_FAILED',
      );
      expectProblem(await send('{"status": "pending"}'), 400, 'VALIDATION_FAILED');
      expectProblem(await send('{"role": ["tenant_admin"]}'), 400, 'VALIDATION_FAILED');
      expectProblem(await send('{"role": "root"}'), 400, 'VALIDATION_FAILED');
      expectProblem(await send('{}'), 400, 'VALIDATION_FAILED');
    });

    it('the last administrator can neither demote nor disable itself (409 LAST_ADMIN)', async () => {
      const self = (
        await call(base, 'GET', '/auth/me', { tenant: 'bravo', token: bravoAdminToken })
      ).body.id as string;

      const demote = await patch(self, { role: 'member' }, bravoAdminToken, 'bravo');
      const disable = await patch(self, { status: 'disabled' }, bravoAdminToken, 'bravo');

      expectProblem(demote, 409, 'LAST_ADMIN');
      expectProblem(disable, 409, 'LAST_ADMIN');
    });

    it('two administrators disabling each other at once leave one active administrator', async () => {
      await provision(harness.plane.db, 'duel');
      const seeded = await seedAdmin(harness.plane.db, 'duel', {
        email: 'a@duel.example',
        name: 'A',
      });
      const first = (
        await call(base, 'POST', '/auth/setup', {
          tenant: 'duel',
          body: { token: seeded.setupToken, password: PASSWORD },
        })
      ).body;
      const second = await member(
        'b@duel.example',
        'tenant_admin',
        'duel',
        first.accessToken as string,
      );

      const answers = await Promise.all([
        patch(idOf(second), { status: 'disabled' }, first.accessToken as string, 'duel'),
        patch(idOf(first), { status: 'disabled' }, second.accessToken as string, 'duel'),
      ]);
      const [active] = await harness.plane.db.sequelize.query<{ count: number }>(
        `SELECT count(*)::int AS count FROM tenant_duel.users
          WHERE role = 'tenant_admin' AND status = 'active'`,
        { type: QueryTypes.SELECT },
      );

      expect(active?.count).to.equal(1);
      for (const answer of answers) {
        expect(answer.status, JSON.stringify(answer.body)).to.be.oneOf([200, 401, 409, 503]);
      }
    });

    it('an administrator demoted to member cannot use its older access token to re-promote itself', async () => {
      const session = await member('fallen@alpha.example', 'tenant_admin');
      const demoted = await patch(idOf(session), { role: 'member' });

      const again = await patch(
        idOf(session),
        { role: 'tenant_admin' },
        session.accessToken as string,
      );
      const [row] = await harness.plane.db.sequelize.query<{ role: string }>(
        `SELECT role FROM ${alpha.schema}.users WHERE id = $1`,
        { bind: [idOf(session)], type: QueryTypes.SELECT },
      );

      expect(demoted.status).to.equal(200);
      expectProblem(again, 403, 'FORBIDDEN');
      expect(row?.role).to.equal('member');
    });

    it('a disabled administrator cannot invite with its older access token', async () => {
      const session = await member('ousted@alpha.example', 'tenant_admin');
      const disabled = await patch(idOf(session), { status: 'disabled' });

      const invite = await call(base, 'POST', '/auth/invitations', {
        tenant: 'alpha',
        token: session.accessToken as string,
        body: { email: 'backdoor@alpha.example', name: 'B', role: 'tenant_admin' },
      });

      expect(disabled.status).to.equal(200);
      expectProblem(invite, 401, 'UNAUTHENTICATED');
    });

    it('an auditor demoted to member can no longer list users with its older access token', async () => {
      const session = await member('former-auditor@alpha.example', 'auditor');
      await patch(idOf(session), { role: 'member' });

      const list = await call(base, 'GET', '/auth/users', {
        tenant: 'alpha',
        token: session.accessToken as string,
      });

      expectProblem(list, 403, 'FORBIDDEN');
    });
  });

  describe('invitation input', () => {
    const invite = (body: unknown) =>
      call(base, 'POST', '/auth/invitations', { tenant: 'alpha', token: adminToken, body });

    it('an email that lowercases beyond 254 characters answers 400, not 500', async () => {
      // U+0130 (İ) is one UTF-16 unit that lowercases to two (i + combining dot above).
      const email = `${'\u0130'.repeat(240)}@alpha.example`;

      expectProblem(
        await invite({ email, name: 'Long', role: 'member' }),
        400,
        'VALIDATION_FAILED',
      );
    });

    it('NUL characters in the email or the name answer 400, not 500', async () => {
      expectProblem(
        await invite({ email: 'nul\u0000@alpha.example', name: 'N', role: 'member' }),
        400,
        'VALIDATION_FAILED',
      );
      expectProblem(
        await invite({ email: 'nul@alpha.example', name: 'N\u0000', role: 'member' }),
        400,
        'VALIDATION_FAILED',
      );
    });
  });
});
