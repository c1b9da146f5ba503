import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, loadServiceConfig } from '@vextrus/shared';

const defaults = { service: 'test', port: 3000 };
const explicit = {
  DATABASE_HOST: 'db.internal',
  DATABASE_PORT: '6432',
  DATABASE_USERNAME: 'app',
  DATABASE_PASSWORD: 's3cret',
  DATABASE_NAME: 'vextrus',
};

function problemsOf(env: NodeJS.ProcessEnv): readonly string[] {
  try {
    loadServiceConfig(defaults, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  describe('database settings', () => {
    it('when all DATABASE_* variables are set, it uses them', () => {
      const config = loadServiceConfig(defaults, explicit);

      expect(config.database).to.include({
        host: 'db.internal',
        port: 6432,
        username: 'app',
        password: 's3cret',
        database: 'vextrus',
        source: 'DATABASE_* variables',
      });
    });

    it('waits for a lock 10 s by default; DATABASE_LOCK_TIMEOUT_MS sets it, 0 for no limit', () => {
      expect(loadServiceConfig(defaults, explicit).database.lockTimeoutMs).to.equal(10_000);
      for (const [value, ms] of [
        ['0', 0],
        ['250', 250],
        ['600000', 600_000],
      ] as const) {
        const config = loadServiceConfig(defaults, {
          ...explicit,
          DATABASE_LOCK_TIMEOUT_MS: value,
        });
        expect(config.database.lockTimeoutMs, value).to.equal(ms);
      }
      for (const value of ['-1', '10s', '600001', '1.5']) {
        const problems = problemsOf({ ...explicit, DATABASE_LOCK_TIMEOUT_MS: value });
        expect(problems.join('\n'), value).to.match(/DATABASE_LOCK_TIMEOUT_MS/);
      }
    });

    it('when only DATABASE_URL is set, it takes every part from the URL', () => {
      const config = loadServiceConfig(defaults, {
        DATABASE_URL: 'postgresql://app:p%40ss@db:5433/erp?sslmode=require',
      });

      expect(config.database).to.include({
        host: 'db',
        port: 5433,
        username: 'app',
        password: 'p@ss',
        database: 'erp',
        sslMode: 'require',
        source: 'DATABASE_URL',
      });
    });

    it('when both are set, the explicit variables override the URL and the source says so', () => {
      const config = loadServiceConfig(defaults, {
        DATABASE_URL: 'postgres://url-user:url-pass@url-host:5432/url-db',
        DATABASE_HOST: 'explicit-host',
        DATABASE_PASSWORD: 'explicit-pass',
      });

      expect(config.database).to.include({
        host: 'explicit-host',
        password: 'explicit-pass',
        username: 'url-user',
        database: 'url-db',
      });
      expect(config.database.source).to.equal(
        'DATABASE_URL, overridden by DATABASE_HOST, DATABASE_PASSWORD',
      );
    });

    it('when DATABASE_HOST is set without a password, it names DATABASE_PASSWORD', () => {
      const { DATABASE_PASSWORD: _omitted, ...rest } = explicit;

      expect(problemsOf(rest)).to.deep.equal(['DATABASE_PASSWORD is missing']);
    });

    it('when nothing is set, it says how to configure the database', () => {
      expect(problemsOf({})[0]).to.match(/set DATABASE_URL, or DATABASE_HOST/);
    });

    it('names every invalid variable in one error, not only the first', () => {
      const problems = problemsOf({
        DATABASE_HOST: 'h',
        DATABASE_PORT: 'seventy',
        PORT: '99999',
        LOG_LEVEL: 'loud',
        DATABASE_SSLMODE: 'prefer',
      });

      expect(problems.join('\n')).to.include('PORT must be a whole number from 0 to 65535');
      expect(problems.join('\n')).to.include('LOG_LEVEL must be one of');
      expect(problems.join('\n')).to.include('DATABASE_SSLMODE must be one of');
      expect(problems.join('\n')).to.include('DATABASE_PORT must be a port number');
      expect(problems).to.include.members([
        'DATABASE_USERNAME is missing',
        'DATABASE_PASSWORD is missing',
        'DATABASE_NAME is missing',
      ]);
    });

    it('rejects a DATABASE_URL that is not a postgres URL', () => {
      expect(problemsOf({ DATABASE_URL: 'mysql://a:b@c/d' })).to.deep.equal([
        'DATABASE_URL must be a postgres: or postgresql:// URL',
      ]);
    });

    it('when the URL lacks a part and no variable gives it, it names that variable', () => {
      expect(problemsOf({ DATABASE_URL: 'postgres://app@db/erp' })).to.deep.equal([
        'DATABASE_PASSWORD is missing (and DATABASE_URL does not give it)',
      ]);
    });
  });

  describe('values read from files (NAME_FILE)', () => {
    const folder = mkdtempSync(path.join(tmpdir(), 'vextrus-config-'));

    it('reads DATABASE_PASSWORD from DATABASE_PASSWORD_FILE, dropping the trailing newline', () => {
      const file = path.join(folder, 'password');
      writeFileSync(file, 'from-a-secret\n');
      const { DATABASE_PASSWORD: _omitted, ...rest } = explicit;

      const config = loadServiceConfig(defaults, { ...rest, DATABASE_PASSWORD_FILE: file });

      expect(config.database.password).to.equal('from-a-secret');
    });

    it('reports a file that cannot be read', () => {
      const { DATABASE_PASSWORD: _omitted, ...rest } = explicit;
      const missing = path.join(folder, 'nope');

      expect(problemsOf({ ...rest, DATABASE_PASSWORD_FILE: missing })).to.deep.equal([
        `DATABASE_PASSWORD_FILE names ${missing}, which cannot be read (ENOENT)`,
      ]);
    });

    it('refuses a variable given both directly and as a file', () => {
      const file = path.join(folder, 'password2');
      writeFileSync(file, 'x');

      expect(problemsOf({ ...explicit, DATABASE_PASSWORD_FILE: file })).to.deep.equal([
        'DATABASE_PASSWORD and DATABASE_PASSWORD_FILE are both set; set only one',
      ]);
    });
  });

  it('applies defaults for the service settings', () => {
    const config = loadServiceConfig(defaults, explicit);

    expect(config).to.include({
      port: 3000,
      host: '0.0.0.0',
      logLevel: 'info',
      shutdownTimeoutMs: 10_000,
      trustProxyHops: 0,
    });
    expect(config.database.poolMax).to.equal(10);
  });
});
