import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';

/** Passwords of the local platform, generated on the first run and kept for the next ones. */
export interface LocalSecrets {
  postgresPassword: string;
  ownerPassword: string;
  appPassword: string;
  retentionPassword: string;
}

function generate(): string {
  return randomBytes(18).toString('base64url');
}

export async function loadOrCreateSecrets(file: string): Promise<LocalSecrets> {
  const fresh: LocalSecrets = {
    postgresPassword: generate(),
    ownerPassword: generate(),
    appPassword: generate(),
    retentionPassword: generate(),
  };
  if (!existsSync(file)) {
    await writeFile(file, JSON.stringify(fresh, null, 2), { mode: 0o600 });
    return fresh;
  }
  const stored = JSON.parse(await readFile(file, 'utf8')) as Partial<LocalSecrets>;
  const merged = { ...fresh, ...stored };
  if (Object.keys(stored).length !== Object.keys(merged).length) {
    await writeFile(file, JSON.stringify(merged, null, 2), { mode: 0o600 });
  }
  return merged;
}
