export { startPostgres } from './postgres.js';
export type { EmbeddedPostgresOptions, RunningPostgres } from './postgres.js';
export { freePort } from './ports.js';
export { LogTail } from './log-tail.js';
export { createTestDatabase, testClusterUrl } from './testing/database.js';
export type { TestDatabase } from './testing/database.js';
export { spawnTs, REPO_ROOT } from './testing/process.js';
export type { SpawnedProcess } from './testing/process.js';
