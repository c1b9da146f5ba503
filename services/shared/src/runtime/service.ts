import type { Server } from 'node:http';
import type { Express } from 'express';
import type { Sequelize } from 'sequelize';
import type { DestinationStream } from 'pino';
import { ConfigError } from '../config/errors.js';
import type { EnvReader } from '../config/env.js';
import { describeDatabase } from '../config/database.js';
import { loadServiceConfig, type ServiceConfig } from '../config/service.js';
import { createHttpApp } from '../http/app.js';
import { Health, type ReadinessCheck } from '../http/health.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { createHttpMetrics, type HttpMetrics } from '../observability/metrics.js';
import { connectAtStartup, createSequelize, pingDatabase, StartupError } from './database.js';
import { boundPort, listen, shutdownGracefully } from './server.js';
import { flushTracing } from '../tracing.js';
import { startAuditSealer } from '../audit/sealer.js';

/** What a service's own code gets from the shared runtime. */
export interface ServiceRuntime<T extends object = object> {
  config: ServiceConfig & T;
  logger: Logger;
  sequelize: Sequelize;
  metrics: HttpMetrics;
  health: Health;
}

export interface ServiceDefinition<T extends object = object> {
  name: string;
  defaultPort: number;
  /** Reads the service's own variables (problems are collected with the shared ones). */
  config?: (reader: EnvReader) => T;
  /** Readiness checks beyond the database ping. */
  readiness?: (runtime: ServiceRuntime<T>) => Record<string, ReadinessCheck>;
  /** Start-up checks that must pass before the service listens (e.g. the login role is safe). */
  preflight?: (runtime: ServiceRuntime<T>) => Promise<void>;
  routes: (app: Express, runtime: ServiceRuntime<T>) => void;
}

export interface RunningService<T extends object = object> {
  runtime: ServiceRuntime<T>;
  server: Server;
  port: number;
  url: string;
  /** Graceful shutdown; resolves when requests are done and the pool is closed. */
  stop(): Promise<void>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  logDestination?: DestinationStream;
}

/** Loads configuration, builds the app and listens. Throws ConfigError on bad configuration. */
export async function startService<T extends object>(
  definition: ServiceDefinition<T>,
  options: StartOptions = {},
): Promise<RunningService<T>> {
  const config = loadServiceConfig(
    { service: definition.name, port: definition.defaultPort },
    options.env ?? process.env,
    definition.config,
  );
  const logger = createLogger({
    service: definition.name,
    level: config.logLevel,
    destination: options.logDestination,
  });
  logger.info({ database: describeDatabase(config.database) }, 'configuration loaded');

  const sequelize = createSequelize(config.database, logger, definition.name);
  const metrics = createHttpMetrics(definition.name);
  const sealer = startAuditSealer(sequelize, { logger, registry: metrics.registry });
  const runtime = { config, logger, sequelize, metrics } as ServiceRuntime<T>;
  runtime.health = new Health(
    { database: () => pingDatabase(sequelize), ...definition.readiness?.(runtime) },
    logger,
  );
  await connectAtStartup(sequelize, config.database);
  await definition.preflight?.(runtime);

  const app = createHttpApp({
    logger,
    metrics,
    health: runtime.health,
    bodyLimitBytes: config.bodyLimitBytes,
    trustProxyHops: config.trustProxyHops,
    routes: (express) => definition.routes(express, runtime),
  });
  let server: Server;
  try {
    server = await listen(app, config.host, config.port);
  } catch (err) {
    // A port in use or not allowed (EADDRINUSE, EACCES): said in one line, without a stack.
    await sequelize.close();
    throw new StartupError(
      'LISTEN_FAILED',
      `cannot listen on ${config.host}:${config.port}: ` +
        `${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const port = boundPort(server);
  logger.info({ host: config.host, port }, 'listening');

  let stopping: Promise<void> | undefined;
  return {
    runtime,
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    stop() {
      stopping ??= shutdownGracefully({
        server,
        health: runtime.health,
        logger,
        delayMs: config.shutdownDelayMs,
        timeoutMs: config.shutdownTimeoutMs,
        // The audit records of the last requests are sealed before the pool goes.
        release: async () => {
          await sealer.stop();
          await sequelize.close();
        },
      });
      return stopping;
    },
  };
}

/** Exit status for configuration errors (EX_CONFIG from sysexits.h). */
export const EXIT_CONFIG = 78;

/**
 * The main of a service process: start, then stop gracefully on SIGTERM or SIGINT and exit 0.
 * Bad configuration prints one line naming every problem and exits 78 at once.
 */
export async function runService<T extends object>(
  definition: ServiceDefinition<T>,
): Promise<void> {
  let service: RunningService<T>;
  try {
    service = await startService(definition);
  } catch (err) {
    const logger = createLogger({ service: definition.name });
    if (err instanceof ConfigError) {
      logger.fatal({ code: err.code, problems: err.problems }, err.message);
      process.exit(EXIT_CONFIG);
    }
    if (err instanceof StartupError) {
      logger.fatal({ code: err.code }, `cannot start ${definition.name}: ${err.message}`);
      process.exit(1);
    }
    logger.fatal({ err }, `cannot start ${definition.name}`);
    process.exit(1);
  }
  const { logger } = service.runtime;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    // The handlers stay installed for the whole drain: a repeated signal (a supervisor that
    // sends SIGTERM twice, npm forwarding one to its child) must not fall back to Node's default
    // and kill the process with its requests in flight. The drain is bounded by its deadline.
    if (stopping) {
      logger.info({ signal }, 'already shutting down');
      return;
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    service
      .stop()
      // Spans that cannot be delivered (the collector is down) do not make a clean drain fail.
      .then(() =>
        flushTracing().catch((err: unknown) => logger.warn({ err }, 'last traces not exported')),
      )
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
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
