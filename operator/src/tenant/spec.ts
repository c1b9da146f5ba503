import { administratorProblem, organizationProblems, validateSlug } from '@vextrus/migrations';
import { errorMessage } from '../runtime/errors.js';
import type { TenantSpec } from './types.js';

/** The problem with a slug, as the provisioning library words it, or undefined when it is fine. */
export function slugProblem(slug: string): string | undefined {
  try {
    validateSlug(slug);
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}

/**
 * What provisioning would refuse in a spec that the CRD schema let through: the schema cannot
 * say everything the provisioning library checks (its patterns see only ASCII spaces, and a CRD
 * installed by an older chart checks less). Each problem names its field. A spec with problems
 * is not provisioned at all, so that no tenant is left half-written. The first administrator and
 * organization are only checked until the tenant is `provisioned` (its schema exists): they seed
 * the tenant once, and changing them later has no effect, as the CRD says, so an edit of them
 * must not stop the upkeep of a working tenant.
 */
export function specProblems(spec: TenantSpec, provisioned: boolean): string[] {
  const problems: string[] = [];
  const slug = slugProblem(spec.slug);
  if (slug) problems.push(`spec.slug: ${slug}`);
  // Counted in characters, as the CRD schema and PostgreSQL count them (not UTF-16 units).
  const displayName = [...spec.displayName.trim()].length;
  if (displayName < 1 || displayName > 200) {
    problems.push('spec.displayName: it must have 1 to 200 characters besides spaces');
  }
  if (provisioned) return problems;
  const administrator = administratorProblem(spec.firstAdministrator);
  if (administrator) problems.push(`spec.firstAdministrator: ${administrator}`);
  for (const problem of organizationProblems(spec.firstOrganization)) {
    problems.push(`spec.firstOrganization: ${problem}`);
  }
  return problems;
}
