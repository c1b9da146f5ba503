import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { provision } from '@vextrus/migrations';
import { createPlane, type TestPlane } from '@vextrus/devkit';
import {
  authenticate,
  createTenantDirectory,
  createTokenVerifier,
  remoteKeySource,
  requireRole,
  requireTenant,
  staticKeySource,
  startService,
  tenantRoute,
  type PublicJwk,
  type RunningService,
} from '@vextrus/shared';

const POLICY = { issuer: 'vextrus-auth', audience: 'vextrus-api' };
const USER = '6f1c1a52-5d8e-4f55-9b1e-2f8f0d7e9a10';

interface TestKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: KeyObject;
  publicKey: KeyObject;
  jwk: PublicJwk;
}

/** An RSA key (RS256, the platform's default), an EC P-256 key (ES256) or a too short RSA key. */
function newKey(kid: string, type: 'rsa' | 'ec' | 'rsa-1024' = 'rsa'): TestKey {
  const { privateKey, publicKey } =
    type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: type === 'rsa' ? 2048 : 1024 });
  const alg = type === 'ec' ? 'ES256' : 'RS256';
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, jwk };
}

function b64(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

const now = (): number => Math.floor(Date.now() / 1000);

describe('shared token verification', function () {
  this.timeout(30_000);
  const key = newKey('key-1');
  const ecKey = newKey('key-ec', 'ec');
  const shortKey = newKey('key-short', 'rsa-1024');
  let plane: TestPlane;
  let tenantId: string;
  let service: RunningService;
  let jwks: Server;
  let published: PublicJwk[] = [key.jwk, ecKey.jwk, shortKey.jwk];

  /** A well-formed token of tenant alpha; `claims` and `options` change one thing each. */
  function token(
    claims: Record<string, unknown> = {},
    options: jwt.SignOptions = {},
    signer: TestKey = key,
  ): string {
    const signOptions: jwt.SignOptions = {
      algorithm: signer.alg,
      keyid: signer.kid,
      issuer: POLICY.issuer,
      audience: POLICY.audience,
      subject: USER,
      jwtid: 'jti-1',
      expiresIn: 600,
      ...options,
    };
    if (signOptions.expiresIn === undefined) delete signOptions.expiresIn;
    return jwt.sign(
      { tid: tenantId, tenant: 'alpha', roles: ['member'], ...claims },
      signer.privateKey,
      signOptions,
    );
  }

  /** The cases every verifier must refuse, by name. */
  function rejectedTokens(): Record<string, string> {
    const header = { alg: 'none', typ: 'JWT', kid: key.kid };
    const payload = {
      tid: tenantId,
      tenant: 'alpha',
      roles: ['member'],
      sub: USER,
      jti: 'x',
      iss: POLICY.issuer,
      aud: POLICY.audience,
      iat: now(),
      exp: now() + 600,
    };
    const hsInput = `${b64({ alg: 'HS256', typ: 'JWT', kid: key.kid })}.${b64(payload)}`;
    const publicPem = key.publicKey.export({ format: 'pem', type: 'spki' });
    const hsSignature = createHmac('sha256', publicPem).update(hsInput).digest('base64url');
    const { exp: _exp, ...withoutExp } = payload;
    // Signed by the EC key but naming the RSA key: the key decides the algorithm, not the token.
    const crossed = jwt.sign(payload, ecKey.privateKey, { algorithm: 'ES256', keyid: key.kid });
    return {
      'alg none': `${b64(header)}.${b64(payload)}.`,
      'no exp': jwt.sign(withoutExp, key.privateKey, { algorithm: key.alg, keyid: key.kid }),
      'ES256 header naming an RSA key': crossed,
      'RSA key shorter than 2048 bits': token({}, { allowInsecureKeySizes: true }, shortKey),
      'PS256 (not accepted)': jwt.sign(payload, key.privateKey, {
        algorithm: 'PS256',
        keyid: key.kid,
      }),
      'HMAC signed with the public key': `${hsInput}.${hsSignature}`,
      expired: token({ iat: now() - 3600, exp: now() - 600 }, { expiresIn: undefined }),
      'not yet valid': token({}, { notBefore: 600 }),
      'issued in the future': token(
        { iat: now() + 600, exp: now() + 1200 },
        { expiresIn: undefined },
      ),
      'other issuer': token({}, { issuer: 'someone-else' }),
      'other audience': token({}, { audience: 'other-api' }),
      'unknown key': token({}, {}, newKey('key-unknown')),
      'no tenant claim': token({ tenant: undefined }),
      garbage: 'not.a.token',
    };
  }

  before(async () => {
    plane = await createPlane('auth_verification');
    tenantId = (await provision(plane.db, 'alpha')).tenantId;
    await provision(plane.db, 'bravo');
    jwks = createServer((_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ keys: published }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/`;
    service = await startService(
      {
        name: 'guarded',
        defaultPort: 0,
        routes: (app, runtime) => {
          const verifier = createTokenVerifier(
            POLICY,
            remoteKeySource({ url: jwksUrl, cooldownMs: 0 }),
          );
          const directory = createTenantDirectory(runtime.sequelize, 0);
          app.get(
            '/whoami',
            authenticate(verifier),
            requireTenant(directory),
            tenantRoute(runtime.sequelize, (req) =>
              Promise.resolve({ body: { user: req.user?.userId, tenant: req.user?.tenant } }),
            ),
          );
          app.get('/admin', authenticate(verifier), requireRole('tenant_admin'), (_req, res) => {
            res.json({ ok: true });
          });
        },
      },
      { env: { DATABASE_URL: plane.appUrl, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent' } },
    );
  });
  after(async () => {
    await service.stop();
    jwks.close();
    await plane.close();
  });

  async function get(path: string, bearer: string, tenant = 'alpha') {
    const response = await fetch(`${service.url}${path}`, {
      headers: { Authorization: `Bearer ${bearer}`, 'X-Tenant-ID': tenant },
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  it('a well-formed token verifies to its principal', async () => {
    const verifier = createTokenVerifier(POLICY, staticKeySource([key.jwk]));

    const principal = await verifier.verify(token());

    expect(principal).to.include({ userId: USER, tenantId, tenant: 'alpha', tokenId: 'jti-1' });
    expect(principal.roles).to.deep.equal(['member']);
  });

  it('an ES256 token of an EC P-256 key verifies too (keys made before RS256 became the default)', async () => {
    const verifier = createTokenVerifier(POLICY, staticKeySource([key.jwk, ecKey.jwk]));

    const principal = await verifier.verify(token({}, {}, ecKey));
    const answer = await get('/whoami', token({}, {}, ecKey));

    expect(principal.userId).to.equal(USER);
    expect(answer.status).to.equal(200);
  });

  it('a JWKS entry whose alg does not fit its key type is left out', async () => {
    const mislabeled = { ...ecKey.jwk, alg: 'RS256' };
    const verifier = createTokenVerifier(POLICY, staticKeySource([mislabeled]));

    const error = await verifier.verify(token({}, {}, ecKey)).then(
      () => undefined,
      (err: Error) => err,
    );

    expect(error?.message).to.contain('unknown key');
  });

  it('createTokenVerifier refuses each rejected-token case with TokenRejected', async () => {
    const verifier = createTokenVerifier(POLICY, staticKeySource(published));

    for (const [name, bad] of Object.entries(rejectedTokens())) {
      const error = await verifier.verify(bad).then(
        () => undefined,
        (err: Error) => err,
      );
      expect(error?.name, name).to.equal('TokenRejected');
    }
  });

  it('the passport-jwt guard answers one identical 401 for every rejected-token case', async () => {
    const answers = [];
    for (const [name, bad] of Object.entries(rejectedTokens())) {
      const answer = await get('/whoami', bad);
      answers.push({ name, status: answer.status, code: answer.body.code });
    }

    for (const answer of answers) {
      expect(answer, answer.name).to.deep.include({ status: 401, code: 'UNAUTHENTICATED' });
    }
  });

  it('with a valid token of its own tenant, the guarded route answers in the tenant', async () => {
    const answer = await get('/whoami', token());

    expect(answer.status).to.equal(200);
    expect(answer.body).to.deep.equal({ user: USER, tenant: 'alpha' });
  });

  it('when the token belongs to another tenant, it answers 403 TENANT_MISMATCH', async () => {
    const answer = await get('/whoami', token(), 'bravo');

    expect(answer.status).to.equal(403);
    expect(answer.body.code).to.equal('TENANT_MISMATCH');
  });

  it('when the token lacks the role, requireRole answers 403 FORBIDDEN', async () => {
    const answer = await get('/admin', token());

    expect(answer.status).to.equal(403);
    expect(answer.body.code).to.equal('FORBIDDEN');
  });

  it('a token of a newly published key verifies at once (unknown kid refreshes the JWKS)', async () => {
    const rotated = newKey('key-2');
    published = [...published, rotated.jwk];

    const answer = await get('/whoami', token({}, {}, rotated));

    expect(answer.status).to.equal(200);
  });

  it('when the JWKS cannot be read and nothing is cached, the key source fails with KeysUnavailable (503)', async () => {
    const source = remoteKeySource({ url: 'http://127.0.0.1:9/jwks.json', fetchTimeoutMs: 1000 });

    const error = await source.key('key-1').then(
      () => undefined,
      (err: Error) => err,
    );

    expect(error?.name).to.equal('KeysUnavailable');
  });
});
