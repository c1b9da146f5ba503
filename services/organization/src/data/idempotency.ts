import { createHash } from 'node:crypto';
import type { Reply } from '@vextrus/shared';
import { errors } from '../errors.js';
import type { Sql } from './sql.js';

interface StoredKey {
  fingerprint: string;
  status: number | null;
  body: unknown;
  headers: Record<string, string>;
}

/**
 * How long a key answers with its first reply. After that the key is free again: a request that
 * reuses it is a new request.
 */
export const IDEMPOTENCY_KEY_TTL_HOURS = 24;

/**
 * Every this many new keys a process claims, the request that claims one also deletes expired
 * keys of its tenant, at most IDEMPOTENCY_PURGE_BATCH of them. The table then stays near the
 * keys of the last day, without a job of its own: a tenant's keys are purged as fast as its own
 * new keys come in, about IDEMPOTENCY_PURGE_BATCH / IDEMPOTENCY_PURGE_EVERY for each.
 */
export const IDEMPOTENCY_PURGE_EVERY = 50;
export const IDEMPOTENCY_PURGE_BATCH = 500;

/** New keys claimed by this process, which decides when a claim also purges. */
let claims = 0;

/** A hash of what makes two requests the same: route, caller and (validated) body. */
export function fingerprint(parts: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url');
}

/**
 * Deletes the oldest expired keys of the transaction's tenant (row-level security keeps it to
 * that tenant), skipping any that a concurrent request is reclaiming.
 */
async function purgeExpiredKeys(sql: Sql): Promise<void> {
  await sql.rows(
    `DELETE FROM idempotency_keys WHERE (tenant_id, key) IN (
       SELECT tenant_id, key FROM idempotency_keys
        WHERE created_at < now() - make_interval(hours => $1)
        ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
    [IDEMPOTENCY_KEY_TTL_HOURS, IDEMPOTENCY_PURGE_BATCH],
  );
}

/**
 * Claims an Idempotency-Key in the current transaction. Undefined means the key is new (or
 * expired) and now held by this request until it commits; a concurrent request with the same key
 * waits on the key's unique index and, once this one commits, gets the stored reply. A reply
 * stored for a different request is refused.
 */
export async function claimKey(sql: Sql, key: string, print: string): Promise<Reply | undefined> {
  const claimed = await sql.rows(
    `INSERT INTO idempotency_keys (key, fingerprint) VALUES ($1, $2)
     ON CONFLICT (tenant_id, key) DO UPDATE
        SET fingerprint = EXCLUDED.fingerprint, response_status = NULL, response_body = NULL,
            response_headers = '{}'::jsonb, created_at = now()
      WHERE idempotency_keys.created_at < now() - make_interval(hours => $3)
     RETURNING key`,
    [key, print, IDEMPOTENCY_KEY_TTL_HOURS],
  );
  if (claimed.length > 0) {
    claims += 1;
    if (claims % IDEMPOTENCY_PURGE_EVERY === 0) await purgeExpiredKeys(sql);
    return undefined;
  }
  const stored = await sql.row<StoredKey>(
    `SELECT fingerprint, response_status AS status, response_body AS body,
            response_headers AS headers
       FROM idempotency_keys WHERE key = $1`,
    [key],
  );
  if (!stored || stored.status === null) {
    throw new Error(`cannot replay Idempotency-Key ${key}: no stored response`);
  }
  if (stored.fingerprint !== print) {
    throw errors.IDEMPOTENCY_KEY_REUSED(
      'This Idempotency-Key was first used for another request; send a new key for a new request',
    );
  }
  return {
    status: stored.status,
    body: stored.body,
    headers: { ...stored.headers, 'Idempotent-Replayed': 'true' },
  };
}

/** Keeps the reply of the request that claimed `key`, for its retries. */
export async function storeReply(sql: Sql, key: string, reply: Reply): Promise<void> {
  await sql.rows(
    `UPDATE idempotency_keys
        SET response_status = $2, response_body = $3::jsonb, response_headers = $4::jsonb
      WHERE key = $1 RETURNING key`,
    [key, reply.status ?? 200, JSON.stringify(reply.body ?? null), JSON.stringify(reply.headers)],
  );
}
