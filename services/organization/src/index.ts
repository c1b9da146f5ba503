export { createOrganizationService, organizationService } from './service.js';
export type { OrganizationConfig, OrganizationServiceOptions } from './service.js';
export { errors } from './errors.js';
export { openApiDocument } from './http/openapi.js';
export { ROUTES } from './http/routes.js';
export { ENTITIES, MAX_DIVISION_DEPTH } from './domain/entities.js';
