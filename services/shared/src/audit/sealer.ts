import { Counter, Gauge, type Registry } from 'prom-client';
import { QueryTypes, type Sequelize } from 'sequelize';
import { AppError } from '../http/errors.js';
import type { Logger } from '../observability/logger.js';
import { withOwnTenantTransaction, type TenantContext } from '../tenancy/context.js';
import { AuditError, AuditErrorCode } from './errors.js';

/**
 * Sealing: a tenant's committed audit records wait in audit_pending until audit_seal() chains
 * them into audit_events (tenant migration 2026120426-audit-sealing). An audited mutation then
 * pays for storing its record only; chaining happens after its answer, for many records at once.
 *
 * Who seals:
 * - the sealer of each service process (startAuditSealer), a moment after a transaction with
 *   records commits;
 * - every reader of the log (the query API, export, verify), before it reads, so it misses no
 *   committed record;
 * - anyone who calls sealAudit. A record left pending by a process that died is sealed by the
 *   next of these for its tenant.
 */

/** The PostgreSQL error of a call to a function that does not exist. */
const UNDEFINED_FUNCTION = '42883';

/**
 * Chains the tenant's pending records, in a short transaction of its own (never the caller's),
 * and says how many; it waits at most lockTimeoutMs for a lock, when given, else the session's
 * lock_timeout. A schema from before 2026120426-audit-sealing has nothing pending (its
 * records are chained as they are written): 0. Any other failure rejects with an AuditError
 * (AUDIT_SEAL_FAILED) naming the tenant, its cause the database's error, unless it is the
 * tenant's own problem (TENANT_UNAVAILABLE, an AppError), which stays as it is.
 */
export async function sealAudit(
  sequelize: Sequelize,
  tenant: TenantContext,
  options: { lockTimeoutMs?: number } = {},
): Promise<number> {
  try {
    return await withOwnTenantTransaction(sequelize, tenant, async (transaction) => {
      if (options.lockTimeoutMs !== undefined) {
        await sequelize.query(`SELECT set_config('lock_timeout', $1, true)`, {
          transaction,
          bind: [`${options.lockTimeoutMs}ms`],
        });
      }
      const [row] = await sequelize.query<{ sealed: string }>('SELECT audit_seal() AS sealed', {
        transaction,
        type: QueryTypes.SELECT,
      });
      return Number(row?.sealed ?? 0);
    });
  } catch (err) {
    const cause = (err as { parent?: { code?: unknown; message?: unknown } }).parent;
    // audit_seal itself missing: a schema from before sealing. Another missing function, one
    // that something inside the seal calls, is a failure like any other.
    if (cause?.code === UNDEFINED_FUNCTION && String(cause.message).includes('audit_seal()')) {
      return 0;
    }
    if (err instanceof AppError) throw err;
    throw new AuditError(
      AuditErrorCode.SealFailed,
      `cannot seal the pending audit records of ${tenant.schema}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

export interface AuditSealerOptions {
  logger: Logger;
  /** How long after a commit with records the tenant is sealed; the commits meanwhile join. */
  delayMs?: number;
  /** The wait after a failed seal; it doubles with each failure in a row, up to a minute. */
  retryMs?: number;
  /** Failures in a row after which the sealer leaves the tenant to the next commit or read. */
  maxFailures?: number;
  /**
   * Where its metrics go (the service's /metrics): audit_records_sealed_total,
   * audit_seal_failures_total and audit_seals_due (tenants with a seal on its way).
   */
  registry?: Registry;
}

interface SealerMetrics {
  sealed: Counter;
  failures: Counter;
  due: Gauge;
}

function sealerMetrics(registry: Registry): SealerMetrics {
  return {
    sealed: new Counter({
      name: 'audit_records_sealed_total',
      help: 'Audit records chained by this process after their commit',
      registers: [registry],
    }),
    failures: new Counter({
      name: 'audit_seal_failures_total',
      help: 'Seals of a tenant that failed; its records stay pending until a later seal',
      registers: [registry],
    }),
    due: new Gauge({
      name: 'audit_seals_due',
      help: 'Tenants whose records wait for a seal of this process (scheduled or running)',
      registers: [registry],
    }),
  };
}

interface Due {
  tenant: TenantContext;
  timer?: NodeJS.Timeout;
  running?: Promise<void>;
  /** A commit came while the seal was running: seal again. */
  again: boolean;
  failures: number;
}

/**
 * Seals each tenant a moment after its records commit: one timer per tenant, so the records of
 * every commit within delayMs are sealed together, and never two seals of one tenant at once
 * from this process. A failed seal is logged and tried again later; the records stay pending,
 * committed, meanwhile.
 */
export class AuditSealer {
  private readonly due = new Map<string, Due>();
  private readonly delayMs: number;
  private readonly retryMs: number;
  private readonly maxFailures: number;
  private readonly metrics: SealerMetrics | undefined;
  private stopped = false;

  constructor(
    private readonly sequelize: Sequelize,
    private readonly options: AuditSealerOptions,
  ) {
    this.delayMs = options.delayMs ?? 200;
    this.retryMs = options.retryMs ?? 1_000;
    this.maxFailures = options.maxFailures ?? 8;
    this.metrics = options.registry && sealerMetrics(options.registry);
  }

  /** Records of `tenant` committed: seal them soon. */
  schedule(tenant: TenantContext): void {
    if (this.stopped) return;
    const key = `${tenant.schema}:${tenant.tenantId}`;
    const entry = this.due.get(key);
    if (!entry) {
      this.arm(key, { tenant, again: false, failures: 0 }, this.delayMs);
    } else if (entry.running) {
      entry.again = true;
    }
  }

  /** Seals every tenant with a seal on its way now, and waits for the seals running. */
  async flush(): Promise<void> {
    const runs = [...this.due.keys()].map((key) => this.run(key));
    await Promise.all(runs);
  }

  /** Takes no more work, then flushes (graceful shutdown, before the pool closes). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.flush();
  }

  private arm(key: string, entry: Due, ms: number): void {
    entry.timer = setTimeout(() => void this.run(key), ms);
    // A pending seal never keeps a process alive; stop() seals what is due.
    entry.timer.unref();
    this.due.set(key, entry);
    this.metrics?.due.set(this.due.size);
  }

  private async run(key: string): Promise<void> {
    const entry = this.due.get(key);
    if (!entry) return;
    if (entry.running) return entry.running;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.running = this.sealWhileDue(entry);
    await entry.running;
    entry.running = undefined;
    if (entry.again && !this.stopped) {
      entry.again = false;
      const backoff = this.retryMs * 2 ** Math.max(entry.failures - 1, 0);
      this.arm(key, entry, entry.failures > 0 ? Math.min(backoff, 60_000) : this.delayMs);
    } else {
      this.due.delete(key);
      this.metrics?.due.set(this.due.size);
    }
  }

  /**
   * Seals once; when the sealer stops meanwhile, seals again as long as commits came during the
   * seal (it may have read audit_pending before them), since no timer will come back for them.
   */
  private async sealWhileDue(entry: Due): Promise<void> {
    await this.seal(entry);
    while (this.stopped && entry.again) {
      entry.again = false;
      await this.seal(entry);
    }
  }

  private async seal(entry: Due): Promise<void> {
    const { logger } = this.options;
    const tenant = entry.tenant.schema;
    try {
      const sealed = await sealAudit(this.sequelize, entry.tenant);
      entry.failures = 0;
      this.metrics?.sealed.inc(sealed);
      logger.debug({ tenant, sealed }, 'audit records sealed');
    } catch (err) {
      entry.failures += 1;
      this.metrics?.failures.inc();
      if (entry.failures >= this.maxFailures || this.stopped) {
        logger.error(
          { err, tenant, failures: entry.failures },
          'cannot seal audit records: they stay pending, committed, until the next commit or ' +
            'read of the log of this tenant seals them',
        );
        entry.failures = 0;
        return;
      }
      logger.warn({ err, tenant, failures: entry.failures }, 'cannot seal audit records yet');
      entry.again = true;
    }
  }
}

const sealers = new WeakMap<Sequelize, AuditSealer>();

/**
 * Starts sealing after the commits made through `sequelize` (the shared runtime does it for
 * every service). Without a sealer, records wait for the next read of the log.
 */
export function startAuditSealer(sequelize: Sequelize, options: AuditSealerOptions): AuditSealer {
  const sealer = new AuditSealer(sequelize, options);
  sealers.set(sequelize, sealer);
  return sealer;
}

/** Records of `tenant` committed through `sequelize`: its sealer, if any, seals them soon. */
export function sealSoon(sequelize: Sequelize, tenant: TenantContext): void {
  sealers.get(sequelize)?.schedule(tenant);
}
