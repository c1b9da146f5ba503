export { authService } from './service.js';
export { errors } from './errors.js';
