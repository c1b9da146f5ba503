/**
 * The tenant operator's process: reads its configuration, connects to the Kubernetes API (the
 * in-cluster service account, or KUBECONFIG) and to PostgreSQL with the owner's credentials
 * (DATABASE_* or DATABASE_URL, as the services read them), and runs until SIGTERM.
 */
import { hostname } from 'node:os';
import {
  ConfigError,
  createLogger,
  EnvReader,
  LOG_LEVELS,
  readDatabaseConfig,
} from '@vextrus/shared';
import { databaseUrl, openDatabase } from '@vextrus/migrations';
import { startOperator } from './operator.js';
import { errorMessage } from './runtime/errors.js';
import { OperatorKubeConfig } from './runtime/kubeconfig.js';
import { readOperatorSettings } from './settings.js';

const reader = new EnvReader(process.env);
// The level is checked like every other setting: pino throws on one it does not know, which
// would end the process with a stack trace before the configuration is even read.
const logger = createLogger({
  service: 'operator',
  level: reader.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
});

function fail(message: string, problems?: readonly string[]): never {
  logger.fatal({ problems }, message);
  process.exit(78);
}

const settings = readOperatorSettings(reader);
// The database settings are checked with the same reader, so that one line names every problem.
readDatabaseConfig(reader);
if (reader.problems.length > 0) fail(new ConfigError(reader.problems).message, reader.problems);
let url: string;
try {
  url = databaseUrl(process.env);
} catch (err) {
  fail(errorMessage(err));
}

let kubeConfig: OperatorKubeConfig;
try {
  kubeConfig = OperatorKubeConfig.load();
} catch (err) {
  fail(errorMessage(err));
}
const db = openDatabase({ url, logger, roles: settings.roles });
let operator: Awaited<ReturnType<typeof startOperator>>;
try {
  operator = await startOperator({
    kubeConfig,
    db,
    logger,
    settings: settings.operator,
    identity: process.env.POD_NAME ?? `${hostname()}-${process.pid}`,
    probePort: settings.probePort,
    leaderElection: settings.leaderElection,
    workers: settings.workers,
  });
} catch (err) {
  // For example the probe port in use: one line that says why, without a stack trace.
  const code = (err as NodeJS.ErrnoException).code;
  logger.fatal({ code }, `cannot start the operator: ${(err as Error).message}`);
  process.exit(1);
}
logger.info(
  { namespace: settings.operator.namespace, probePort: operator.probePort },
  'operator started',
);

const shutdown = (signal: string): void => {
  logger.info({ signal }, 'shutting down');
  operator
    .stop()
    .then(() => db.close())
    .then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
};
process.once('SIGTERM', () => shutdown('SIGTERM'));
process.once('SIGINT', () => shutdown('SIGINT'));
