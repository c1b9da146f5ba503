import type { ServiceDefinition } from '@vextrus/shared';

/** The organization service: health and metrics for now; its API arrives with its own issue. */
export const organizationService: ServiceDefinition = {
  name: 'organization',
  defaultPort: 3002,
  routes: () => {},
};
