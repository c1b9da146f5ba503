export { startPostgres, postgresCanReach } from './postgres.js';
export type { EmbeddedPostgresOptions, RunningPostgres } from './postgres.js';
export { freePort } from './ports.js';
export { LogTail } from './log-tail.js';
export { createTestDatabase, testClusterUrl } from './testing/database.js';
export { startOwnPostgres, type OwnPostgres } from './testing/own-postgres.js';
export type { TestDatabase } from './testing/database.js';
export { spawnTs, runTs, runMigrationsCli, REPO_ROOT } from './testing/process.js';
export type { CommandOutcome } from './testing/process.js';
export type { SpawnedProcess } from './testing/process.js';
export { startControlPlane } from './kube/control-plane.js';
export type { ControlPlane, ControlPlaneOptions } from './kube/control-plane.js';
export { startCluster, waitUntil, installCrds, createNamespace } from './kube/cluster.js';
export type { Cluster, ClusterOptions } from './kube/cluster.js';
export { LocalNode } from './kube/local-node.js';
export { imageName, PLATFORM_IMAGES } from './kube/images.js';
export type { LocalImage } from './kube/images.js';
export { toolPath, cachedToolPath } from './kube/binaries.js';
export { createPlane, loginUrl, silent } from './testing/plane.js';
export type { TestPlane } from './testing/plane.js';
export {
  OWNER_SECRET,
  operatorCrds,
  ownerEnvironment,
  prepareForOperator,
} from './kube/operator-setup.js';
