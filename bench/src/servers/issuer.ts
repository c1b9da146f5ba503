/**
 * A token issuer for benchmarks that start the real services: an RSA 2048 key like the ones the
 * platform makes (RS256), its JWKS served on 127.0.0.1 for the services' AUTH_JWKS_URL, and
 * tokens signed as the auth service signs them.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import { MIN_RSA_BITS, TOKEN_ALGORITHM } from '@vextrus/shared';

export interface BenchIssuer {
  /** The JWKS URL to give the services. */
  jwksUrl: string;
  /** A one-hour token for `roles` in the tenant (id and slug). */
  token(tenantId: string, slug: string, roles: readonly string[]): string;
  close(): Promise<void>;
}

export async function startIssuer(): Promise<BenchIssuer> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: MIN_RSA_BITS });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench', alg: TOKEN_ALGORITHM };
  const keys = JSON.stringify({ keys: [{ ...jwk, use: 'sig' }] });
  const server = http.createServer((_req, res) => {
    res.setHeader('Content-Type', 'application/json');
    res.end(keys);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
    token: (tenantId, slug, roles) =>
      jwt.sign({ tid: tenantId, tenant: slug, roles }, privateKey, {
        algorithm: TOKEN_ALGORITHM,
        keyid: 'bench',
        issuer: 'vextrus-auth',
        audience: 'vextrus-api',
        subject: randomUUID(),
        jwtid: randomUUID(),
        expiresIn: 3600,
      }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
