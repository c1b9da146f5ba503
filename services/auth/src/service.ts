import type { ServiceDefinition } from '@vextrus/shared';

/** The auth service: health and metrics for now; its API arrives with its own issue. */
export const authService: ServiceDefinition = {
  name: 'auth',
  defaultPort: 3001,
  routes: () => {},
};
