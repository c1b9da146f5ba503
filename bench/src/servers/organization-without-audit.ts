/**
 * The organization service exactly as services/organization/src/main.ts starts it, except that
 * its mutations write no audit record: the baseline of "a mutation with vs. without its audit
 * record". The service reaches the audit facility through one module of its own
 * (services/organization/src/audit.ts); a module resolve hook, registered before the service is
 * imported, gives it ./without-audit.ts in that module's place. Nothing in the service has a
 * switch to turn auditing off; only this benchmark entry can.
 */
import { register } from 'node:module';

register(new URL('./without-audit-hook.ts', import.meta.url));
await import('../../../services/organization/src/main.js');
