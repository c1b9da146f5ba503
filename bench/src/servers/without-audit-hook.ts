/**
 * A module resolve hook: services/organization/src/audit.ts becomes ./without-audit.ts for every
 * importer but ./without-audit.ts itself, which takes changesOf from the real module.
 */
const SEAM = '/services/organization/src/audit.ts';
const REPLACEMENT = new URL('./without-audit.ts', import.meta.url).href;

interface Resolved {
  url: string;
  format?: string | null;
  shortCircuit?: boolean;
}

interface ResolveContext {
  parentURL?: string;
}

type NextResolve = (specifier: string, context: ResolveContext) => Promise<Resolved>;

export async function resolve(
  specifier: string,
  context: ResolveContext,
  next: NextResolve,
): Promise<Resolved> {
  const resolved = await next(specifier, context);
  const replace = resolved.url.endsWith(SEAM) && context.parentURL !== REPLACEMENT;
  return replace ? { ...resolved, url: REPLACEMENT } : resolved;
}
