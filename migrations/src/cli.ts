#!/usr/bin/env node
/**
 * vextrus-migrate: the migrations CLI and the entrypoint of the migrations container image.
 *
 *   platform up|down|status
 *   tenant <slug> up|down|status|provision|verify|repair|deprovision --retain|--delete
 *   tenant <slug> seed-admin --email E --name N
 *   tenant <slug> seed-organization --name N --code C [--country BD --currency BDT --time-zone Z]
 *   tenants up --all [--concurrency N]
 *   roles ensure
 *   audit verify <slug>
 *   audit retention --tenant <slug>|--all [--batch-size N]
 *
 * Connects with DATABASE_URL. Role names come from VEXTRUS_OWNER_ROLE, VEXTRUS_APP_ROLE,
 * VEXTRUS_RETENTION_ROLE and VEXTRUS_TENANT_ROLE_PREFIX (defaults vextrus_owner, vextrus_app,
 * vextrus_retention, vextrus_tenant_); `roles ensure` sets the passwords given in
 * VEXTRUS_OWNER_PASSWORD, VEXTRUS_APP_PASSWORD and VEXTRUS_RETENTION_PASSWORD.
 * Results (status, drift reports) are JSON on stdout; logs go to stderr. Exits 0 when done,
 * 1 with one line on stderr otherwise.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';
import { describe, MigrationError, MigrationErrorCode } from './errors.js';
import { validateSlug } from './identifiers.js';
import { createLogger } from './logger.js';
import { openDatabase, type Database } from './database.js';
import { ensureRoles, type RoleNames } from './roles.js';
import { migratePlatform, platformStatus } from './platform.js';
import { seedAdmin } from './seed/admin.js';
import { seedOrganization } from './seed/organization.js';
import { AUDIT_USAGE, runAudit } from './audit/index.js';
import {
  deprovision,
  migrateAllTenants,
  migrateTenant,
  provision,
  repair,
  tenantStatus,
} from './tenants.js';
import { verify } from './tenant-verify.js';

const USAGE = `usage:
  vextrus-migrate platform up|down|status
  vextrus-migrate tenant <slug> up|down|status|provision|verify|repair
  vextrus-migrate tenant <slug> deprovision --retain|--delete
  vextrus-migrate tenant <slug> seed-admin --email E --name N
  vextrus-migrate tenant <slug> seed-organization --name N --code C [--country --currency --time-zone]
  vextrus-migrate tenants up --all [--concurrency N]
  vextrus-migrate roles ensure
${AUDIT_USAGE}`;

function usage(problem: string): MigrationError {
  return new MigrationError(MigrationErrorCode.InvalidArguments, `${problem}\n${USAGE}`);
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function roleNamesFromEnv(env: NodeJS.ProcessEnv): Partial<RoleNames> {
  const names: Partial<RoleNames> = {};
  if (env.VEXTRUS_OWNER_ROLE) names.owner = env.VEXTRUS_OWNER_ROLE;
  if (env.VEXTRUS_APP_ROLE) names.app = env.VEXTRUS_APP_ROLE;
  if (env.VEXTRUS_RETENTION_ROLE) names.retention = env.VEXTRUS_RETENTION_ROLE;
  if (env.VEXTRUS_TENANT_ROLE_PREFIX) names.tenantPrefix = env.VEXTRUS_TENANT_ROLE_PREFIX;
  return names;
}

/** Options that take a value. */
const VALUED_FLAGS = new Set([
  'concurrency',
  'email',
  'name',
  'tenant',
  'batch-size',
  'code',
  'country',
  'currency',
  'time-zone',
]);

/**
 * The flags each command takes, by `group action`, and how many positional arguments it has
 * (the tenant slug counts). Anything else is refused rather than ignored: a misspelt or
 * unsupported flag (`--dry-run`) must not let the command run as if it were not there.
 */
const COMMANDS: Record<string, { flags: readonly string[]; positional: number }> = {
  'platform up': { flags: [], positional: 2 },
  'platform down': { flags: [], positional: 2 },
  'platform status': { flags: [], positional: 2 },
  'tenant up': { flags: [], positional: 3 },
  'tenant down': { flags: [], positional: 3 },
  'tenant status': { flags: [], positional: 3 },
  'tenant provision': { flags: [], positional: 3 },
  'tenant verify': { flags: [], positional: 3 },
  'tenant repair': { flags: [], positional: 3 },
  'tenant deprovision': { flags: ['retain', 'delete'], positional: 3 },
  'tenant seed-admin': { flags: ['email', 'name'], positional: 3 },
  'tenant seed-organization': {
    flags: ['name', 'code', 'country', 'currency', 'time-zone'],
    positional: 3,
  },
  'tenants up': { flags: ['all', 'concurrency'], positional: 2 },
  'roles ensure': { flags: [], positional: 2 },
};

/** Refuses flags and positional arguments that a known command does not take. */
function onlyKnown(positional: string[], flags: Map<string, string | true>): void {
  const [group, first, second] = positional;
  const action = group === 'tenant' ? second : first;
  const command = `${group ?? ''} ${action ?? ''}`;
  const expected = COMMANDS[command];
  // An unknown command is refused with its own message by the group that reads it.
  if (!expected) return;
  const unknown = [...flags.keys()].find((name) => !expected.flags.includes(name));
  if (unknown !== undefined) {
    throw usage(`${command} does not take --${unknown.slice(0, 40)}`);
  }
  if (positional.length > expected.positional) {
    const extra = JSON.stringify(positional[expected.positional]?.slice(0, 40));
    throw usage(`${command} does not take the argument ${extra}`);
  }
}

/** --concurrency: plain decimal digits from 1 to 64 (Number() would take "0x10" and "1e1"). */
function concurrencyOf(flags: Map<string, string | true>): number {
  const raw = flags.get('concurrency') ?? '1';
  if (raw === true) throw usage('--concurrency needs a value');
  const concurrency = /^[1-9][0-9]?$/.test(raw) ? Number(raw) : NaN;
  if (!(concurrency >= 1 && concurrency <= 64)) {
    throw usage(
      `--concurrency must be an integer from 1 to 64, not ${JSON.stringify(raw.slice(0, 20))}`,
    );
  }
  return concurrency;
}

/** Splits `--name value` and `--flag` options from positional arguments. */
function parse(args: string[]): { positional: string[]; flags: Map<string, string | true> } {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const name = arg.slice(2);
    const next = args[i + 1];
    if (VALUED_FLAGS.has(name) && next !== undefined && !next.startsWith('--')) {
      flags.set(name, next);
      i++;
    } else flags.set(name, true);
  }
  return { positional, flags };
}

async function runPlatform(db: Database, action: string | undefined): Promise<void> {
  switch (action) {
    case 'up':
    case 'down':
      print({ applied: await migratePlatform(db, { direction: action }) });
      return;
    case 'status':
      print(await platformStatus(db));
      return;
    default:
      throw usage(`unknown platform command ${JSON.stringify(action ?? '')}`);
  }
}

async function runTenant(
  db: Database,
  slug: string | undefined,
  action: string | undefined,
  flags: Map<string, string | true>,
): Promise<void> {
  if (!slug) throw usage('missing tenant slug');
  switch (action) {
    case 'up':
    case 'down':
      print({ applied: await migrateTenant(db, slug, { direction: action }) });
      return;
    case 'status':
      print(await tenantStatus(db, slug));
      return;
    case 'provision':
      print(await provision(db, slug));
      return;
    case 'verify':
    case 'repair': {
      const report = action === 'verify' ? await verify(db, slug) : await repair(db, slug);
      print(report);
      if (!report.clean) {
        const what = action === 'verify' ? 'has' : 'still has after repair';
        const codes = [...new Set(report.issues.map((i) => i.code))].join(', ');
        throw new MigrationError(
          MigrationErrorCode.DriftDetected,
          `tenant ${slug} ${what} ${report.issues.length} drift issue(s): ${codes}`,
        );
      }
      return;
    }
    case 'deprovision': {
      const retain = flags.has('retain');
      if (retain === flags.has('delete')) throw usage('deprovision needs --retain or --delete');
      await deprovision(db, slug, retain ? 'retain' : 'delete');
      print({ tenant: slug, deprovisioned: retain ? 'retain' : 'delete' });
      return;
    }
    case 'seed-admin': {
      const email = flags.get('email');
      const name = flags.get('name');
      if (typeof email !== 'string' || typeof name !== 'string') {
        throw usage('seed-admin needs --email E and --name N');
      }
      print(await seedAdmin(db, slug, { email, name }));
      return;
    }
    case 'seed-organization': {
      const [name, code] = [flags.get('name'), flags.get('code')];
      if (typeof name !== 'string' || typeof code !== 'string') {
        throw usage('seed-organization needs --name N and --code C');
      }
      const optional = (flag: string): string | undefined => {
        const value = flags.get(flag);
        return typeof value === 'string' ? value : undefined;
      };
      print(
        await seedOrganization(db, slug, {
          name,
          code,
          country: optional('country'),
          currency: optional('currency'),
          timeZone: optional('time-zone'),
        }),
      );
      return;
    }
    default:
      throw usage(`unknown tenant command ${JSON.stringify(action ?? '')}`);
  }
}

async function runTenants(
  db: Database,
  action: string | undefined,
  flags: Map<string, string | true>,
): Promise<void> {
  if (action !== 'up' || !flags.has('all')) throw usage('expected: tenants up --all');
  const concurrency = concurrencyOf(flags);
  const result = await migrateAllTenants(db, { concurrency });
  print(result);
  if (result.failed.length > 0) {
    const first = result.failed[0];
    throw new MigrationError(
      MigrationErrorCode.MigrationFailed,
      `cannot migrate ${result.failed.length} of ${result.failed.length + result.migrated.length}` +
        ` tenants; first: ${first?.slug}: ${first?.error}`,
    );
  }
}

/** The levels pino knows, which LOG_LEVEL may name. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Runs one command; returns the exit code. */
export async function main(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const level = env.LOG_LEVEL ?? 'info';
  if (!LOG_LEVELS.includes(level)) {
    const levels = LOG_LEVELS.join(', ');
    process.stderr.write(
      `error [${MigrationErrorCode.Configuration}]: LOG_LEVEL must be one of ${levels}, ` +
        `not ${JSON.stringify(level.slice(0, 20))}\n`,
    );
    return 1;
  }
  const logger = createLogger(level);
  // Sequelize writes some warnings (a failed rollback on a lost connection) with console.warn:
  // they become log records, so that stderr holds only those and the one error line.
  /* eslint-disable no-console -- Sequelize's console.warn is redirected, not used. */
  const consoleWarn = console.warn;
  console.warn = (...parts: unknown[]) => logger.warn(format(...parts));
  /* eslint-enable no-console */
  let db: Database | undefined;
  try {
    const { positional, flags } = parse(args);
    const [group, first, second] = positional;
    if (!group || flags.has('help')) throw usage('missing command');
    if (group === 'tenant' && first) validateSlug(first);
    if (group !== 'audit') onlyKnown(positional, flags);
    const concurrency = group === 'tenants' ? concurrencyOf(flags) : 1;
    db = openDatabase({
      roles: roleNamesFromEnv(env),
      logger,
      // Every running operation holds one connection for its advisory lock.
      poolMax: concurrency * 2 + 1,
    });
    switch (group) {
      case 'platform':
        await runPlatform(db, first);
        break;
      case 'tenant':
        await runTenant(db, first, second, flags);
        break;
      case 'tenants':
        await runTenants(db, first, flags);
        break;
      case 'audit':
        await runAudit(db, positional.slice(1), flags, print, USAGE);
        break;
      case 'roles':
        if (first !== 'ensure') throw usage('expected: roles ensure');
        await ensureRoles(db, {
          owner: env.VEXTRUS_OWNER_PASSWORD,
          app: env.VEXTRUS_APP_PASSWORD,
          retention: env.VEXTRUS_RETENTION_PASSWORD,
        });
        print({ roles: db.roles });
        break;
      default:
        throw usage(`unknown command ${JSON.stringify(group)}`);
    }
    return 0;
  } catch (err) {
    const code = err instanceof MigrationError ? err.code : 'UNEXPECTED';
    logger.debug({ err }, 'command failed');
    process.stderr.write(`error [${code}]: ${describe(err)}\n`);
    return 1;
  } finally {
    await db?.close().catch(() => undefined);
    // eslint-disable-next-line no-console -- restores what main replaced.
    console.warn = consoleWarn;
  }
}

/** True when this file is the program (also through the npm bin symlink), not an import. */
function isEntrypoint(): boolean {
  const script = process.argv[1];
  return script !== undefined && import.meta.url === pathToFileURL(realpathSync(script)).href;
}

if (isEntrypoint()) {
  process.exitCode = await main(process.argv.slice(2));
}
