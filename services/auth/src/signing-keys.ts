import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  keyAlgorithm,
  MIN_RSA_BITS,
  TOKEN_ALGORITHM,
  type PublicJwk,
  type TokenAlgorithm,
} from '@vextrus/shared';

export interface SigningKey {
  kid: string;
  /** RS256 for an RSA key, ES256 for an EC P-256 key. */
  algorithm: TokenAlgorithm;
  privateKey: KeyObject;
  publicJwk: PublicJwk;
}

/** The keys of this process: the newest signs, all of them publish (and so keep verifying). */
export interface KeyRing {
  current: SigningKey;
  all: SigningKey[];
}

type Jwk = Record<string, unknown>;

/** The RFC 7638 thumbprint of a public key (RSA or EC), base64url: the key's `kid`. */
export function jwkThumbprint(jwk: Jwk): string {
  // The required members only, in lexicographic order, as the RFC prescribes.
  const members = jwk.kty === 'RSA' ? ['e', 'kty', 'n'] : ['crv', 'kty', 'x', 'y'];
  const canonical = JSON.stringify(Object.fromEntries(members.map((name) => [name, jwk[name]])));
  return createHash('sha256').update(canonical).digest('base64url');
}

function signingKey(file: string, pem: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new Error(`cannot read signing key ${file}: it is not a PEM private key`, { cause: err });
  }
  const algorithm = keyAlgorithm(privateKey);
  if (!algorithm) {
    throw new Error(
      `cannot use signing key ${file}: it must be an RSA key of at least ${MIN_RSA_BITS} bits ` +
        '(RS256) or an EC P-256 key (ES256)',
    );
  }
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' }) as Jwk;
  const kid = jwkThumbprint(jwk);
  const members =
    algorithm === 'RS256'
      ? { kty: 'RSA', n: jwk.n as string, e: jwk.e as string }
      : { kty: 'EC', crv: 'P-256', x: jwk.x as string, y: jwk.y as string };
  return {
    kid,
    algorithm,
    privateKey,
    publicJwk: { ...members, kid, alg: algorithm, use: 'sig' },
  };
}

/** PEM files of a folder, by name; dot files (a Secret volume's `..data` links) are skipped. */
async function pemFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  return names.filter((name) => name.endsWith('.pem') && !name.startsWith('.')).sort();
}

/**
 * Checks the mounted key folder while the configuration is read, before anything connects: the
 * problem that would stop loadKeyRing (a folder that cannot be read, no .pem key, a key that is
 * not a usable private key), or undefined when the keys load.
 */
export function signingKeysProblem(dir: string): string | undefined {
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((name) => name.endsWith('.pem') && !name.startsWith('.'))
      .sort();
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    return `AUTH_SIGNING_KEYS_DIR names ${dir}, which cannot be read (${reason})`;
  }
  if (files.length === 0) return `AUTH_SIGNING_KEYS_DIR ${dir} holds no .pem key`;
  for (const file of files) {
    try {
      signingKey(file, readFileSync(join(dir, file), 'utf8'));
    } catch (err) {
      return `AUTH_SIGNING_KEYS_DIR: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  return undefined;
}

/** Writes a new key (RSA, for TOKEN_ALGORITHM) named by the time, so that names sort by age. */
async function generateLocalKey(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { privateKey } =
    TOKEN_ALGORITHM === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: MIN_RSA_BITS })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
  const name = `${new Date().toISOString().replace(/[:.]/g, '-')}.pem`;
  await writeFile(join(dir, name), pem, { mode: 0o600, flag: 'wx' });
}

/**
 * Loads the signing keys: from the mounted Secret folder when given, else from the local folder
 * (generating one key there the first time). Keys are named so that they sort by age (a date):
 * the last signs, and every key publishes, so tokens of an older key verify until the operator
 * removes it (after its last token expired).
 */
export async function loadKeyRing(options: {
  signingKeysDir?: string;
  localKeysDir?: string;
}): Promise<KeyRing> {
  const dir = options.signingKeysDir ?? options.localKeysDir;
  if (!dir) throw new Error('cannot load signing keys: no key folder is configured');
  if (!options.signingKeysDir && (await pemFiles(dir).catch(() => [])).length === 0) {
    await generateLocalKey(dir);
  }
  let files: string[];
  try {
    files = await pemFiles(dir);
  } catch (err) {
    throw new Error(`cannot read the signing key folder ${dir}`, { cause: err });
  }
  const all = await Promise.all(
    files.map(async (file) => signingKey(file, await readFile(join(dir, file), 'utf8'))),
  );
  const current = all.at(-1);
  if (!current) throw new Error(`cannot sign tokens: ${dir} holds no .pem key`);
  return { current, all };
}
