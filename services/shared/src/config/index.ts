export { EnvReader } from './env.js';
export { ConfigError } from './errors.js';
export { readDatabaseConfig, describeDatabase, SSL_MODES } from './database.js';
export type { DatabaseConfig, SslMode } from './database.js';
export { loadServiceConfig, LOG_LEVELS } from './service.js';
export type { ServiceConfig, ServiceDefaults, LogLevel } from './service.js';
