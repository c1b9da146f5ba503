export { AsyncLocalStorageNamespace, enableTransactionContext } from './cls.js';
export {
  currentTenant,
  sendWithCommit,
  transactionRows,
  transactionTextRows,
  transactionWithSettings,
  withOwnTenantTransaction,
  withTenantTransaction,
} from './context.js';
export type { TenantContext } from './context.js';
export { TenancyError, TenancyErrorCode } from './errors.js';
export { assertSafeLoginRole } from './login-role.js';
