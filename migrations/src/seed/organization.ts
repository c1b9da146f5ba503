import type { Database } from '../database.js';
import { MigrationError, MigrationErrorCode } from '../errors.js';
import { seedTenant } from './act-as-tenant.js';

/** Where a tenant's first organization is assumed to be when its definition does not say. */
export const ORGANIZATION_DEFAULTS = {
  country: 'BD',
  currency: 'BDT',
  timeZone: 'Asia/Dhaka',
} as const;

/** The tenant's definition of its first organization. */
export interface SeedOrganizationOptions {
  /** Legal and display name, 1-200 characters. */
  name: string;
  /** Code unique in the tenant: 1-32 letters, digits, "_", "." or "-". */
  code: string;
  /** ISO 3166-1 alpha-2; ORGANIZATION_DEFAULTS.country (BD) when absent. */
  country?: string;
  /** ISO 4217; ORGANIZATION_DEFAULTS.currency (BDT) when absent. */
  currency?: string;
  /** IANA time zone; ORGANIZATION_DEFAULTS.timeZone (Asia/Dhaka) when absent. */
  timeZone?: string;
}

export interface SeedOrganizationResult {
  tenant: string;
  /**
   * `created`: the tenant had no organization and now has this one; `present`: the tenant
   * already has organizations, so nothing was written (the first one may have been renamed or
   * replaced since, and a re-run must not bring it back).
   */
  outcome: 'created' | 'present';
  /** The organization with the definition's code, when there is one. */
  organizationId?: string;
}

const CODE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

function invalid(problem: string): MigrationError {
  return new MigrationError(MigrationErrorCode.InvalidArguments, problem);
}

function isTimeZone(value: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: value });
    return value.length <= 64;
  } catch {
    return false;
  }
}

function withDefaults(options: SeedOrganizationOptions): Required<SeedOrganizationOptions> {
  return {
    name: options.name.trim(),
    code: options.code,
    country: options.country ?? ORGANIZATION_DEFAULTS.country,
    currency: options.currency ?? ORGANIZATION_DEFAULTS.currency,
    timeZone: options.timeZone ?? ORGANIZATION_DEFAULTS.timeZone,
  };
}

/**
 * Everything seedOrganization would refuse in a definition (none when it is fine): a caller (the
 * operator) can check a definition before it provisions anything.
 */
export function organizationProblems(options: SeedOrganizationOptions): string[] {
  const resolved = withDefaults(options);
  return [
    ...(resolved.name.length < 1 || resolved.name.length > 200
      ? ['the name must have 1 to 200 characters']
      : []),
    ...(CODE.test(resolved.code)
      ? []
      : [
          'the code must be 1-32 letters, digits, "_", "." or "-", starting with a letter or digit',
        ]),
    ...(/^[A-Z]{2}$/.test(resolved.country) ? [] : ['the country must be like BD (ISO 3166-1)']),
    ...(/^[A-Z]{3}$/.test(resolved.currency) &&
    Intl.supportedValuesOf('currency').includes(resolved.currency)
      ? []
      : ['the currency must be an ISO 4217 code such as BDT']),
    ...(isTimeZone(resolved.timeZone)
      ? []
      : ['the time zone must be an IANA name such as Asia/Dhaka']),
  ];
}

/** The definition with defaults applied; throws INVALID_ARGUMENTS naming every problem. */
function resolve(options: SeedOrganizationOptions): Required<SeedOrganizationOptions> {
  const problems = organizationProblems(options);
  if (problems.length > 0) throw invalid(`cannot seed the organization: ${problems.join('; ')}`);
  return withDefaults(options);
}

/**
 * Creates the tenant's first organization from the tenant's definition. Idempotent: when the
 * tenant already has any organization nothing is written, so running it on every reconcile is
 * safe; concurrent runs for one tenant take turns on an advisory lock.
 */
export async function seedOrganization(
  db: Database,
  slug: string,
  options: SeedOrganizationOptions,
): Promise<SeedOrganizationResult> {
  const what = `seed the first organization of ${slug}`;
  return seedTenant(db, slug, 'seed-organization', what, async (q) => {
    const [present] = await q<{ count: number }>(
      'SELECT count(*)::int AS count FROM organizations',
    );
    if (present && present.count > 0) {
      const [same] = await q<{ id: string }>('SELECT id FROM organizations WHERE code = $1', [
        options.code,
      ]);
      return { tenant: slug, outcome: 'present' as const, organizationId: same?.id };
    }
    // Looked at only now: once the tenant has an organization, the definition has no effect.
    const definition = resolve(options);
    const [created] = await q<{ id: string }>(
      `INSERT INTO organizations (code, legal_name, display_name, country, currency, time_zone)
         VALUES ($1, $2, $2, $3, $4, $5) RETURNING id`,
      [
        definition.code,
        definition.name,
        definition.country,
        definition.currency,
        definition.timeZone,
      ],
    );
    if (!created) throw new Error('the organization row was not written');
    db.logger.info({ tenant: slug, organizationId: created.id }, 'first organization created');
    return { tenant: slug, outcome: 'created' as const, organizationId: created.id };
  });
}
