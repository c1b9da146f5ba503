/**
 * Issue 4: access-token verifications per second on one core, the platform's verifier with a
 * warm JWKS cache (fetched once from a loopback JWKS server) against a bare jsonwebtoken.verify
 * with the same key and options; and the platform's verifier with an RS256 key (the default)
 * against the same with an ES256 key, which shows why RS256 is the default.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import {
  createTokenVerifier,
  MIN_RSA_BITS,
  remoteKeySource,
  TOKEN_ALGORITHM,
  verifyOptions,
  type TokenAlgorithm,
} from '@vextrus/shared';
import { interleave, type Benchmark } from '../harness.js';
import { msSince, summarize } from '../stats.js';

const POLICY = { issuer: 'vextrus-auth', audience: 'vextrus-api' };

/** Verifications per second of `verify`, called one after another for `seconds`. */
async function rate(seconds: number, verify: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  const until = Date.now() + seconds * 1000;
  let count = 0;
  while (Date.now() < until) {
    for (let i = 0; i < 100; i++) await verify();
    count += 100;
  }
  return count / (msSince(started) / 1000);
}

/** A key of `alg`, its public JWK, and one token of tenant bench signed with it. */
function signed(alg: TokenAlgorithm, kid: string) {
  const { privateKey, publicKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: MIN_RSA_BITS })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  const token = jwt.sign({ tid: randomUUID(), tenant: 'bench', roles: ['member'] }, privateKey, {
    algorithm: alg,
    keyid: kid,
    ...POLICY,
    subject: randomUUID(),
    jwtid: randomUUID(),
    expiresIn: 3600,
  });
  return { publicKey, jwk, token };
}

export const tokenVerification: Benchmark = {
  name: 'token-verification',
  issue: 4,
  async run({ settings, log }) {
    const platform = signed(TOKEN_ALGORITHM, 'bench');
    const ec = signed('ES256', 'bench-ec');
    const jwks = http.createServer((_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ keys: [platform.jwk, ec.jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    try {
      const port = (jwks.address() as AddressInfo).port;
      const verifier = createTokenVerifier(
        POLICY,
        remoteKeySource({ url: `http://127.0.0.1:${port}/jwks.json` }),
      );
      const options = verifyOptions(POLICY);
      // Warm the JWKS cache, so that the rounds measure verification alone.
      await verifier.verify(platform.token);
      await verifier.verify(ec.token);

      log(`token verification: verifier vs. bare jsonwebtoken.verify (${TOKEN_ALGORITHM})`);
      const seconds = Math.max(0.2, settings.seconds / 2);
      const rounds = await interleave(
        settings.rounds,
        () => rate(seconds, () => verifier.verify(platform.token)),
        () =>
          rate(seconds, () =>
            Promise.resolve(jwt.verify(platform.token, platform.publicKey, options)),
          ),
      );
      log('token verification: RS256 vs. ES256 through the verifier');
      const algorithms = await interleave(
        settings.rounds,
        () => rate(seconds, () => verifier.verify(platform.token)),
        () => rate(seconds, () => verifier.verify(ec.token)),
      );
      const median = summarize(rounds.subject).median;
      return [
        {
          id: 'token-verification',
          issue: 4,
          title: 'Access-token verifications per second on one core',
          unit: 'verifications/s',
          better: 'higher',
          subject: {
            label: `platform verifier, ${TOKEN_ALGORITHM}, warm JWKS cache`,
            samples: rounds.subject,
          },
          baseline: { label: 'bare jsonwebtoken.verify', samples: rounds.baseline },
          target: { text: '≥ 20,000/s per core', met: median >= 20_000 },
          method:
            `One ${TOKEN_ALGORITHM} token (the platform's algorithm, ${MIN_RSA_BITS}-bit RSA key) ` +
            `verified back to back in one process (one core) for ${seconds} s per round: ` +
            'createTokenVerifier with remoteKeySource (JWKS fetched once from a loopback ' +
            'server, then cached) vs. jsonwebtoken.verify with the same public key and options. ' +
            'Every verification checks the signature: nothing caches verified tokens.',
        },
        {
          id: 'token-verification-algorithms',
          issue: 4,
          title: 'Verifications per second: RS256 (the default) against ES256',
          unit: 'verifications/s',
          better: 'higher',
          subject: { label: 'platform verifier, RS256 (RSA 2048)', samples: algorithms.subject },
          baseline: { label: 'platform verifier, ES256 (EC P-256)', samples: algorithms.baseline },
          method:
            'The same verifier and JWKS, one token of each key, alternated by round. ES256 ' +
            'keys stay accepted; this is why new keys are RSA.',
        },
      ];
    } finally {
      await new Promise<void>((resolve) => jwks.close(() => resolve()));
    }
  },
};
