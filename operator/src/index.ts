export { startOperator } from './operator.js';
export type { OperatorOptions, RunningOperator } from './operator.js';
export { DEFAULT_RESYNC_SECONDS, readOperatorSettings } from './settings.js';
export { WorkQueue } from './runtime/queue.js';
export { Informer } from './runtime/informer.js';
export { LeaderElector } from './runtime/leader.js';
export { Controller } from './runtime/controller.js';
export { StepError } from './runtime/errors.js';
export * from './tenant/types.js';
export { setupSecretName } from './tenant/reconciler.js';
export {
  migrationJobName,
  migrationTarget,
  MIGRATION_SET,
  LATEST_MIGRATION,
} from './tenant/migration-job.js';
