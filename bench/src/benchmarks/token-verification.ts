/**
 * Issue 4: access-token verifications per second on one core, the platform's verifier with a
 * warm JWKS cache (fetched once from a loopback JWKS server) against a bare jsonwebtoken.verify
 * with the same key and options.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import { createTokenVerifier, remoteKeySource, verifyOptions } from '@vextrus/shared';
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

export const tokenVerification: Benchmark = {
  name: 'token-verification',
  issue: 4,
  async run({ settings, log }) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256', use: 'sig' };
    const jwks = http.createServer((_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    try {
      const port = (jwks.address() as AddressInfo).port;
      const verifier = createTokenVerifier(
        POLICY,
        remoteKeySource({ url: `http://127.0.0.1:${port}/jwks.json` }),
      );
      const token = jwt.sign(
        { tid: randomUUID(), tenant: 'bench', roles: ['member'] },
        privateKey,
        {
          algorithm: 'ES256',
          keyid: 'bench',
          ...POLICY,
          subject: randomUUID(),
          jwtid: randomUUID(),
          expiresIn: 3600,
        },
      );
      const options = verifyOptions(POLICY);
      // Warm the JWKS cache, so that the rounds measure verification alone.
      await verifier.verify(token);

      log('token verification: verifier vs. bare jsonwebtoken.verify');
      const seconds = Math.max(0.2, settings.seconds / 2);
      const rounds = await interleave(
        settings.rounds,
        () => rate(seconds, () => verifier.verify(token)),
        () => rate(seconds, () => Promise.resolve(jwt.verify(token, publicKey, options))),
      );
      const median = summarize(rounds.subject).median;
      return [
        {
          id: 'token-verification',
          issue: 4,
          title: 'Access-token verifications per second on one core',
          unit: 'verifications/s',
          better: 'higher',
          subject: { label: 'platform verifier, warm JWKS cache', samples: rounds.subject },
          baseline: { label: 'bare jsonwebtoken.verify', samples: rounds.baseline },
          target: { text: '≥ 20,000/s per core', met: median >= 20_000 },
          method:
            `One ES256 token verified back to back in one process (one core) for ${seconds} s per ` +
            'round: createTokenVerifier with remoteKeySource (JWKS fetched once from a loopback ' +
            'server, then cached) vs. jsonwebtoken.verify with the same public key and options.',
        },
      ];
    } finally {
      await new Promise<void>((resolve) => jwks.close(() => resolve()));
    }
  },
};
