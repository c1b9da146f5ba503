import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { PASSWORD, call, createAuthHarness, type AuthHarness } from './support.js';

type KeyType = 'rsa' | 'ec' | 'rsa-1024' | 'ed25519';

async function writeKey(dir: string, name: string, type: KeyType = 'rsa'): Promise<void> {
  const { privateKey } =
    type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : type === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('rsa', { modulusLength: type === 'rsa' ? 2048 : 1024 });
  await writeFile(join(dir, name), privateKey.export({ format: 'pem', type: 'pkcs8' }));
}

function headerOf(token: unknown): jwt.JwtHeader | undefined {
  return jwt.decode(String(token), { complete: true })?.header;
}

function kidOf(token: unknown): string | undefined {
  return headerOf(token)?.kid;
}

describe('auth service signing keys', function () {
  this.timeout(60_000);
  let harness: AuthHarness;
  let secretDir: string;

  before(async () => {
    harness = await createAuthHarness('auth_keys');
    secretDir = await mkdtemp(join(tmpdir(), 'vextrus-auth-secret-'));
  });
  after(async () => {
    await harness.close();
    await rm(secretDir, { recursive: true, force: true });
  });

  it('after rotation the new key signs, and tokens of the old key stay valid until expiry', async () => {
    // The old key is EC P-256 (ES256), the new one RSA (RS256): a move between algorithms is a
    // rotation like any other.
    await writeKey(secretDir, '2026-01-01.pem', 'ec');
    const before = await harness.start({ AUTH_SIGNING_KEYS_DIR: secretDir });
    await harness.tenantWithAdmin('alpha', before.service.url);
    const login = { tenant: 'alpha', body: { email: 'admin@alpha.example', password: PASSWORD } };
    const oldToken = (await call(before.service.url, 'POST', '/auth/login', login)).body
      .accessToken;
    await writeKey(secretDir, '2026-02-01.pem');

    const after = await harness.start({ AUTH_SIGNING_KEYS_DIR: secretDir });
    const newToken = (await call(after.service.url, 'POST', '/auth/login', login)).body.accessToken;
    const jwks = await call(after.service.url, 'GET', '/.well-known/jwks.json');
    const oldOnNew = await call(after.service.url, 'GET', '/auth/me', {
      tenant: 'alpha',
      token: String(oldToken),
    });

    const kids = (jwks.body.keys as { kid: string }[]).map((k) => k.kid);
    expect(kidOf(newToken)).to.not.equal(kidOf(oldToken));
    expect([headerOf(oldToken)?.alg, headerOf(newToken)?.alg]).to.deep.equal(['ES256', 'RS256']);
    expect(kids).to.have.members([kidOf(oldToken), kidOf(newToken)]);
    expect(oldOnNew.status).to.equal(200);
  });

  it('without a Secret folder, it generates one key into the local folder and keeps it', async () => {
    const first = await harness.start();
    const second = await harness.start();

    const a = await call(first.service.url, 'GET', '/.well-known/jwks.json');
    const b = await call(second.service.url, 'GET', '/.well-known/jwks.json');

    expect(a.body.keys).to.have.length(1);
    expect((a.body.keys as object[])[0]).to.include({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    expect(b.body.keys).to.deep.equal(a.body.keys);
  });

  for (const type of ['rsa-1024', 'ed25519'] as const) {
    it(`when the Secret folder holds a key of another kind (${type}), it refuses to start`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'vextrus-auth-badkey-'));
      await writeKey(dir, 'bad.pem', type);

      const error = await harness.start({ AUTH_SIGNING_KEYS_DIR: dir }).then(
        () => undefined,
        (err: Error) => err,
      );

      expect(error?.message).to.contain('must be an RSA key of at least 2048 bits');
      await rm(dir, { recursive: true, force: true });
    });
  }
});
