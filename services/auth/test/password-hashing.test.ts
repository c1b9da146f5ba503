import { expect } from 'chai';
import { AppError } from '@vextrus/shared';
import { QueryTypes } from 'sequelize';
import type { TenantContext } from '@vextrus/shared';
import { errors } from '../src/errors.js';
import { defaultHashLimits, HashGate } from '../src/passwords.js';
import { createThrottle } from '../src/throttle.js';
import { PASSWORD, call, comparable, createAuthHarness, type AuthHarness } from './support.js';

/** A task that reports how many tasks run at once, and finishes when released. */
function probe(state: { running: number; peak: number; order: number[] }, id: number) {
  let release!: () => void;
  const done = new Promise<void>((resolve) => (release = resolve));
  const task = async (): Promise<number> => {
    state.running += 1;
    state.peak = Math.max(state.peak, state.running);
    state.order.push(id);
    await done;
    state.running -= 1;
    return id;
  };
  return { task, release };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('password hashing gate', function () {
  it('keeps one core free by default and never runs fewer than one hash', () => {
    expect(defaultHashLimits(2).concurrency).to.equal(1);
    expect(defaultHashLimits(1).concurrency).to.equal(1);
    expect(defaultHashLimits(8)).to.deep.equal({ concurrency: 7, queueLimit: 448 });
  });

  it('runs at most `concurrency` tasks at once, in arrival order', async () => {
    const gate = new HashGate({ concurrency: 2, queueLimit: 10 });
    const state = { running: 0, peak: 0, order: [] as number[] };
    const probes = [1, 2, 3, 4, 5].map((id) => probe(state, id));
    const results = probes.map((p) => gate.run(p.task));

    await tick();
    expect(state.running).to.equal(2);
    for (const p of probes) {
      p.release();
      await tick();
    }

    expect(await Promise.all(results)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(state.peak).to.equal(2);
    expect(state.order).to.deep.equal([1, 2, 3, 4, 5]);
  });

  it('refuses with 503 PASSWORD_CHECKS_BUSY and Retry-After when the queue is full', async () => {
    const refused: number[] = [];
    const gate = new HashGate(
      { concurrency: 1, queueLimit: 1 },
      { refused: () => refused.push(1) },
    );
    const state = { running: 0, peak: 0, order: [] as number[] };
    const first = probe(state, 1);
    const second = probe(state, 2);
    const running = gate.run(first.task);
    const queued = gate.run(second.task);

    const error = await gate
      .run(() => Promise.resolve(3))
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    first.release();
    second.release();

    expect(error).to.be.instanceOf(AppError);
    expect((error as AppError).status).to.equal(503);
    expect((error as AppError).code).to.equal('PASSWORD_CHECKS_BUSY');
    expect(refused).to.have.length(1);
    expect(await Promise.all([running, queued])).to.deep.equal([1, 2]);
  });

  it('a failing task frees its slot for the next one', async () => {
    const gate = new HashGate({ concurrency: 1, queueLimit: 5 });
    const failed = gate.run(() => Promise.reject(new Error('boom')));
    const next = gate.run(() => Promise.resolve('next'));

    const error = await failed.then(
      () => undefined,
      (err: Error) => err,
    );

    expect(error?.message).to.equal('boom');
    expect(await next).to.equal('next');
  });
});

describe('auth service under a login flood', function () {
  this.timeout(60_000);
  let harness: AuthHarness;

  before(async () => {
    harness = await createAuthHarness('auth_hashing');
  });
  after(async () => {
    await harness.close();
  });

  it('with a full hashing queue, logins get 503 problem+json with Retry-After, counted', async () => {
    const setup = await harness.start();
    await harness.tenantWithAdmin('alpha', setup.service.url);
    const { service } = await harness.start({
      AUTH_HASH_CONCURRENCY: '1',
      AUTH_HASH_QUEUE_LIMIT: '0',
      // Throttling is not what this test is about.
      AUTH_LOGIN_ACCOUNT_LIMIT: '1000',
    });
    const login = (password: string) =>
      call(service.url, 'POST', '/auth/login', {
        tenant: 'alpha',
        body: { email: 'admin@alpha.example', password },
      });

    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => login(i === 0 ? PASSWORD : `wrong password ${i}`)),
    );
    const busy = answers.filter((answer) => answer.status === 503);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();

    expect(busy.length).to.be.greaterThan(0);
    expect(busy[0]?.headers.get('content-type')).to.contain('application/problem+json');
    expect(busy[0]?.headers.get('retry-after')).to.equal('1');
    expect(comparable(busy[0]?.body ?? {})).to.include({ code: 'PASSWORD_CHECKS_BUSY' });
    expect(answers.every((answer) => [200, 401, 503].includes(answer.status))).to.equal(true);
    expect(metrics).to.match(
      new RegExp(`auth_password_checks_refused_total\\{[^}]*\\} ${busy.length}\\n`),
    );
  });

  it('attempts whose check was refused as busy are given back, so they never lock out', async () => {
    const setup = await harness.start();
    const tenant = await setup.service.runtime.sequelize.query<TenantContext>(
      `SELECT id AS "tenantId", schema_name AS schema, role_name AS role
         FROM platform.tenants WHERE slug = 'alpha'`,
      { type: QueryTypes.SELECT },
    );
    const context = tenant[0] as TenantContext;
    const throttle = createThrottle(setup.service.runtime.sequelize, {
      accountLimit: 3,
      addressLimit: 100,
      windowSeconds: 900,
    });
    const busy = () => Promise.reject(errors.PASSWORD_CHECKS_BUSY());

    const verdicts = [];
    for (let attempt = 0; attempt < 6; attempt++) {
      verdicts.push((await throttle.attempt(context, 'busy@alpha.example', '10.0.0.1')).allowed);
      await throttle.check(context, 'busy@alpha.example', '10.0.0.1', busy).catch(() => undefined);
    }
    const wrongPassword = () => Promise.resolve(false);
    for (let attempt = 0; attempt < 4; attempt++) {
      verdicts.push((await throttle.attempt(context, 'busy@alpha.example', '10.0.0.1')).allowed);
      await throttle.check(context, 'busy@alpha.example', '10.0.0.1', wrongPassword);
    }

    // Six refused-as-busy attempts cost nothing; then three real ones are allowed, the 4th not.
    expect(verdicts).to.deep.equal([true, true, true, true, true, true, true, true, true, false]);
  });

  it('an email with a lone surrogate gets the usual 401, and its failed login is recorded', async () => {
    const { service } = await harness.start();

    const answer = await call(service.url, 'POST', '/auth/login', {
      tenant: 'alpha',
      body: { email: 'admin@alpha.example\udfff', password: 'some wrong password' },
    });
    const failed = await harness.audits('tenant_alpha', 'auth.login.failed');

    expect(answer.status).to.equal(401);
    expect(failed.some((row) => String(row.details?.email).endsWith('\uFFFD'))).to.equal(true);
  });

  it('a refused config value is named at start-up', async () => {
    const error = await harness.start({ AUTH_HASH_CONCURRENCY: '0' }).then(
      () => undefined,
      (err: Error) => err,
    );

    expect(error?.message).to.contain('AUTH_HASH_CONCURRENCY');
  });
});
