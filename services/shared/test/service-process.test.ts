import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPlane, freePort, spawnTs, type TestPlane } from '@vextrus/devkit';

/** Both services start through the same shared runtime; each is checked as a real process. */
const SERVICES = [
  { name: 'auth', entry: 'services/auth/src/main.ts' },
  { name: 'organization', entry: 'services/organization/src/main.ts' },
];

async function waitReady(url: string, timeoutMs = 15_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(`${url}/health/ready`);
      if (response.status === 200 || Date.now() > deadline) return response;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

for (const { name, entry } of SERVICES) {
  describe(`${name} service process`, () => {
    // The services log in as the application role: they refuse a superuser.
    let plane: TestPlane;
    let parts: { host: string; port: string; user: string; password: string; name: string };
    const keys = { AUTH_LOCAL_KEYS_DIR: mkdtempSync(path.join(tmpdir(), 'vextrus-keys-')) };

    before(async () => {
      plane = await createPlane(name);
      const url = new URL(plane.appUrl);
      parts = {
        host: url.hostname,
        port: url.port,
        user: url.username,
        password: decodeURIComponent(url.password),
        name: plane.database.name,
      };
    });
    after(() => plane.close());

    it('with DATABASE_HOST set but DATABASE_PASSWORD missing, exits non-zero within 2 s naming it', async () => {
      const started = Date.now();
      const child = spawnTs(entry, {
        ...keys,
        DATABASE_HOST: parts.host,
        DATABASE_USERNAME: parts.user,
        DATABASE_NAME: parts.name,
      });

      const code = await child.exited;

      expect(code).to.equal(78);
      // About 0.6 s here (mostly loading TypeScript through tsx); the bound only catches a retry
      // loop or a connection attempt, since a loaded CI machine must not make this flaky.
      const elapsed = Date.now() - started;
      console.log(`      exited ${String(code)} after ${elapsed} ms`);
      expect(elapsed).to.be.below(10_000);
      expect(child.output()).to.include('DATABASE_PASSWORD is missing');
      expect(child.output().trim().split('\n')).to.have.length(1);
      expect(child.output()).not.to.match(/\n\s+at /);
    });

    it('starts with DATABASE_URL alone, becomes ready, and exits 0 on SIGTERM', async () => {
      const port = await freePort();
      const child = spawnTs(entry, { ...keys, DATABASE_URL: plane.appUrl, PORT: String(port) });
      try {
        const ready = await waitReady(`http://127.0.0.1:${port}`);
        expect(ready.status).to.equal(200);
        expect(child.output()).to.include('"source":"DATABASE_URL"');
        expect(child.output()).not.to.include(parts.password);
      } finally {
        child.child.kill('SIGTERM');
      }
      expect(await child.exited).to.equal(0);
    });

    it('lets explicit variables override DATABASE_URL and reads DATABASE_PASSWORD_FILE', async () => {
      const folder = mkdtempSync(path.join(tmpdir(), 'vextrus-secret-'));
      const passwordFile = path.join(folder, 'password');
      writeFileSync(passwordFile, `${parts.password}\n`);
      const port = await freePort();
      const child = spawnTs(entry, {
        ...keys,
        DATABASE_URL: `postgres://nobody:wrong@127.0.0.1:1/nothing`,
        DATABASE_HOST: parts.host,
        DATABASE_PORT: parts.port,
        DATABASE_USERNAME: parts.user,
        DATABASE_NAME: parts.name,
        DATABASE_PASSWORD_FILE: passwordFile,
        PORT: String(port),
      });
      try {
        const ready = await waitReady(`http://127.0.0.1:${port}`);
        expect(ready.status).to.equal(200);
        expect(child.output()).to.include('DATABASE_URL, overridden by DATABASE_HOST');
      } finally {
        child.child.kill('SIGINT');
      }
      expect(await child.exited).to.equal(0);
    });
  });
}
