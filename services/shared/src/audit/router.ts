import { Router, type Response } from 'express';
import type { Logger } from 'pino';
import type { Sequelize, Transaction } from 'sequelize';
import { authenticate, requireRole } from '../auth/middleware.js';
import { commonErrors } from '../http/errors.js';
import { unavailable } from '../http/problem.js';
import { requireTenant, type TenantDirectory, type TenantEntry } from '../auth/tenant-scope.js';
import type { TokenVerifier } from '../auth/verifier.js';
import { enableTransactionContext } from '../tenancy/cls.js';
import { transactionTextRows, withTenantTransaction } from '../tenancy/context.js';
import {
  EVENT_COLUMNS,
  decodeCursor,
  encodeCursor,
  eventsQuery,
  exportQuery,
  type Condition,
  filterCondition,
  formatEvent,
  formatEvents,
  parseQuery,
  verifyQuery,
} from './query.js';
import { auditClientErrors, auditRefusals } from './refusals.js';
import { sealAudit } from './sealer.js';
import { openTenantTransaction } from './session.js';
import { verifyAuditChain } from './verify.js';

export interface AuditRouterOptions {
  sequelize: Sequelize;
  directory: TenantDirectory;
  verifier: TokenVerifier;
  logger?: Logger;
  /** Records per query of the export; memory stays bounded by it. */
  exportBatchSize?: number;
  /**
   * Exports and verifications running at once, together: each holds a pooled connection, an
   * export for as long as its client reads, a verification for as long as it walks the chain
   * (seconds per 100,000 records); more are answered 503 with Retry-After. Default: half the pool
   * (at least one), so that they never take every connection from the rest of the service.
   */
  maxConcurrentLongReads?: number;
  /** An export whose client takes nothing for this long is cut off (default 60 s). */
  exportStallMs?: number;
  /**
   * How long a query of the API waits for a lock on the audit table (an owner's DDL, say) before
   * it gives up (default 10 s): 503 with Retry-After (for an export past its first line, a
   * cut-off export). No request holds its connection for longer waiting, whether or not its
   * client is still there.
   */
  lockWaitMs?: number;
}

/**
 * Resolves once the response can take more, or has closed (the client went away). A response
 * that is closed already resolves at once: its 'close' event has been and will not come again,
 * and a write to it returns false (the client went away while a batch was on its way).
 */
function writable(res: Response, stallMs: number): Promise<void> {
  if (res.destroyed || res.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const stalled = setTimeout(() => res.destroy(), stallMs);
    const done = (): void => {
      clearTimeout(stalled);
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * The audit query API for tenant administrators and auditors, to mount under a prefix
 * (`app.use('/audit', auditRouter(...))`):
 * - `GET /events`: newest first, filtered by from, to (ISO 8601, to exclusive), actor (a user id
 *   or `system:<component>`), action, resourceType, resourceId and outcome; `limit` (1 to 200)
 *   and the opaque `cursor` of the previous page's `nextCursor`.
 * - `GET /events/export`: the same filters, oldest first, as NDJSON streamed in keyset batches
 *   from one snapshot, so memory stays flat however many records there are.
 * - `GET /verify`: the chain report of verifyAuditChain; it takes no parameters.
 * Another method on these paths is answered 405 with Allow.
 * Refused attempts and invalid queries are themselves audited.
 */
export function auditRouter(options: AuditRouterOptions): Router {
  const { sequelize, directory, logger } = options;
  const batchSize = options.exportBatchSize ?? 5_000;
  const poolMax = sequelize.config.pool?.max ?? 5;
  const maxLongReads = options.maxConcurrentLongReads ?? Math.max(1, Math.floor(poolMax / 2));
  const stallMs = options.exportStallMs ?? 60_000;
  const lockWaitMs = options.lockWaitMs ?? 10_000;
  let longReads = 0;
  /** Takes a slot for an export or a verification, or refuses the request with 503. */
  const takeLongRead = (what: string): void => {
    if (longReads >= maxLongReads) {
      throw unavailable(
        `${longReads} audit exports and verifications are running, as many as this service ` +
          `runs at once; try the ${what} again later`,
        30,
      );
    }
    longReads += 1;
  };
  enableTransactionContext(sequelize);
  const refusals = { sequelize, directory, logger };
  const router = Router();
  router.use(
    // The tenant's records (and the refusals) are for the caller only: no cache may keep them.
    (_req, res, next) => {
      res.setHeader('Cache-Control', 'no-store');
      next();
    },
    authenticate(options.verifier, { logger }),
    requireTenant(directory, { onRefused: auditRefusals(refusals), logger }),
    requireRole('tenant_admin', 'auditor', { onRefused: auditRefusals(refusals), logger }),
  );

  router.get('/events', async (req, res) => {
    const query = parseQuery(eventsQuery, req.query);
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const tenant = res.locals.tenant as TenantEntry;
    await sealAudit(sequelize, tenant, { lockTimeoutMs: lockWaitMs });
    const rows = await withTenantTransaction(sequelize, tenant, async (transaction) => {
      await sequelize.query(`SELECT set_config('lock_timeout', $1, true)`, {
        transaction,
        bind: [`${lockWaitMs}ms`],
      });
      const condition = await filterCondition(sequelize, transaction, query);
      if (!condition) return [];
      const bind = [...condition.bind, query.limit + 1];
      const cursorSql = after === undefined ? '' : ` AND e.sequence < $${bind.push(after)}`;
      return transactionTextRows(
        sequelize,
        transaction,
        `SELECT ${EVENT_COLUMNS} FROM audit_events e
          WHERE ${condition.where}${cursorSql}
          ORDER BY e.sequence DESC LIMIT $${condition.bind.length + 1}`,
        bind,
      );
    });
    const page = rows.slice(0, query.limit);
    const last = page.at(-1)?.[0];
    const nextCursor = rows.length > query.limit && last ? encodeCursor(last) : null;
    // Written out rather than through res.json: the items are JSON text already (formatEvent).
    res
      .type('application/json')
      .send(
        `{"items":[${page.map(formatEvent).join(',')}],"nextCursor":${JSON.stringify(nextCursor)}}`,
      );
  });

  router.get('/events/export', async (req, res) => {
    const filters = parseQuery(exportQuery, req.query);
    const tenant = res.locals.tenant as TenantEntry;
    const download = (): void => {
      res.status(200);
      res.setHeader('Content-Type', 'application/x-ndjson; charset=utf-8');
      res.setHeader('Content-Disposition', `attachment; filename="audit-${tenant.slug}.ndjson"`);
    };
    // HEAD (a download manager asks it before the GET) has no body to stream: the export's
    // headers, without reading the whole log into a response that discards it.
    if (req.method === 'HEAD') {
      download();
      res.end();
      return;
    }
    takeLongRead('export');
    let transaction: Transaction | undefined;
    try {
      await sealAudit(sequelize, tenant, { lockTimeoutMs: lockWaitMs });
      transaction = await openTenantTransaction(sequelize, tenant, {
        snapshot: true,
        readOnly: true,
        lockTimeoutMs: lockWaitMs,
      });
      const condition = await filterCondition(sequelize, transaction, filters);
      download();
      const open = transaction;
      const batch = (where: Condition, after: string): Promise<(string | null)[][]> =>
        transactionTextRows(
          sequelize,
          open,
          `SELECT ${EVENT_COLUMNS} FROM audit_events e
            WHERE ${where.where} AND e.sequence > $${where.bind.length + 1}
            ORDER BY e.sequence LIMIT $${where.bind.length + 2}`,
          [...where.bind, after, batchSize],
        );
      // The next batch is asked for as soon as a batch arrives, so that PostgreSQL reads it
      // while this one is written out as JSON and sent.
      let next = condition ? batch(condition, '0') : undefined;
      try {
        while (next && !res.destroyed) {
          const rows = await next;
          const last = rows.at(-1)?.[0];
          next =
            condition && last && rows.length === batchSize ? batch(condition, last) : undefined;
          if (rows.length > 0 && !res.write(formatEvents(rows))) await writable(res, stallMs);
        }
      } finally {
        // A batch still on its way (the client went away) must be done before the rollback.
        await next?.catch(() => undefined);
      }
      res.end();
    } catch (err) {
      // Before the first line, the answer is still a problem, and no longer a download.
      if (!res.headersSent) {
        res.removeHeader('Content-Disposition');
        throw err;
      }
      // Once the first line is out, the status is sent: cut the connection so the client sees
      // a truncated export (no final newline) rather than a complete-looking one.
      logger?.error({ err, tenant: tenant.slug }, 'audit export failed while streaming');
      res.destroy(err as Error);
    } finally {
      await transaction?.rollback().catch(() => undefined);
      longReads -= 1;
    }
  });

  router.get('/verify', async (req, res) => {
    parseQuery(verifyQuery, req.query);
    // HEAD: the report's type, without walking the whole chain for a body that is discarded.
    if (req.method === 'HEAD') {
      res.type('application/json').end();
      return;
    }
    const tenant = res.locals.tenant as TenantEntry;
    takeLongRead('verification');
    // A client that goes away stops the walk at its next batch: nobody would read the report,
    // and its slot and connection are free again.
    const abandoned = new AbortController();
    res.once('close', () => abandoned.abort());
    try {
      await sealAudit(sequelize, tenant, { lockTimeoutMs: lockWaitMs });
      const report = await verifyAuditChain(sequelize, tenant, {
        lockTimeoutMs: lockWaitMs,
        signal: abandoned.signal,
      });
      res.json(report);
    } catch (err) {
      if (!abandoned.signal.aborted) throw err;
    } finally {
      longReads -= 1;
    }
  });

  // Another method on a path of the API: 405 with Allow, as the service answers for its own
  // routes (its methodNotAllowed does not look into a router mounted under a prefix).
  router.all(['/events', '/events/export', '/verify'], (req, _res, next) => {
    next(
      commonErrors.METHOD_NOT_ALLOWED(
        `${req.method} is not allowed here; use GET`,
        {},
        { headers: { Allow: 'GET, HEAD' } },
      ),
    );
  });

  router.use(auditClientErrors(refusals));
  return router;
}
