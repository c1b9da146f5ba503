export { organizationService } from './service.js';
export { errors } from './errors.js';
