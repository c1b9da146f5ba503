import pg from 'pg';
import { Sequelize, type Options } from 'sequelize';
import type { Logger } from 'pino';
import type { DatabaseConfig } from '../config/database.js';

function sslOption(config: DatabaseConfig): Options['dialectOptions'] {
  switch (config.sslMode) {
    case 'disable':
      return { ssl: false };
    case 'require':
      // Encrypted but unauthenticated, like libpq's sslmode=require.
      return { ssl: { rejectUnauthorized: false } };
    case 'verify-ca':
      return { ssl: { rejectUnauthorized: true, checkServerIdentity: () => undefined } };
    case 'verify-full':
      return { ssl: { rejectUnauthorized: true } };
  }
}

/** A Sequelize instance on the configured server; it connects lazily, on first use. */
export function createSequelize(
  config: DatabaseConfig,
  logger: Logger,
  applicationName: string,
): Sequelize {
  return new Sequelize(config.database, config.username, config.password, {
    host: config.host,
    port: config.port,
    dialect: 'postgres',
    dialectModule: pg,
    dialectOptions: { ...sslOption(config), application_name: applicationName },
    pool: { max: config.poolMax, min: 0, idle: 10_000, acquire: 10_000 },
    logging: (sql) => logger.trace({ sql }, 'sql'),
    define: { underscored: true },
  });
}

/** Readiness: the server answers a trivial query. */
export async function pingDatabase(sequelize: Sequelize): Promise<void> {
  try {
    await sequelize.query('SELECT 1');
  } catch (err) {
    throw new Error('database unreachable', { cause: err });
  }
}
