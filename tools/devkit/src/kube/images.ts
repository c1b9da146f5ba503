import path from 'node:path';
import { REPO_ROOT } from '../testing/process.js';

/** How the local node runs an image: the process that stands for the image's ENTRYPOINT. */
export interface LocalImage {
  /** The image's entrypoint as a local command line; a container's `command` replaces it. */
  entrypoint: string[];
  /** Working folder of the process (the repository by default). */
  cwd?: string;
}

/**
 * Image names are compared without registry, tag or digest: `reg.io/vextrus/auth:1.2` →
 * `vextrus/auth`.
 */
export function imageName(reference: string): string {
  const withoutDigest = reference.split('@')[0] ?? reference;
  const lastSlash = withoutDigest.lastIndexOf('/');
  const lastColon = withoutDigest.lastIndexOf(':');
  const withoutTag = lastColon > lastSlash ? withoutDigest.slice(0, lastColon) : withoutDigest;
  const parts = withoutTag.split('/');
  // A first part with a dot or a port is a registry host.
  if (parts.length > 1 && /[.:]|^localhost$/.test(parts[0] ?? '')) parts.shift();
  return parts.join('/');
}

function fromSource(entry: string): LocalImage {
  return {
    entrypoint: [
      process.execPath,
      '--import',
      'tsx',
      '--conditions=vextrus-source',
      path.join(REPO_ROOT, entry),
    ],
    cwd: REPO_ROOT,
  };
}

/** The platform's own images, mapped to the sources their Dockerfiles build. */
export const PLATFORM_IMAGES: Record<string, LocalImage> = {
  'vextrus/auth': fromSource('services/auth/src/main.ts'),
  'vextrus/organization': fromSource('services/organization/src/main.ts'),
  'vextrus/migrations': fromSource('migrations/src/cli.ts'),
  'vextrus/operator': fromSource('operator/src/main.ts'),
};
