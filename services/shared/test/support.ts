import { Writable } from 'node:stream';
import { createTestDatabase, type TestDatabase } from '@vextrus/devkit';
import { startService, type RunningService, type ServiceDefinition } from '@vextrus/shared';

/** Collects the JSON log lines a service writes, so tests can read them back. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];

  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString().split('\n')) {
      if (line.trim()) this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
}

export interface TestService<T extends object = object> {
  service: RunningService<T>;
  logs: LogCapture;
  database: TestDatabase;
  close(): Promise<void>;
}

/** Starts a service in this process on a free port against a fresh database. */
export async function startTestService<T extends object>(
  definition: ServiceDefinition<T>,
  env: NodeJS.ProcessEnv = {},
): Promise<TestService<T>> {
  const database = await createTestDatabase(definition.name);
  const logs = new LogCapture();
  const service = await startService(definition, {
    env: { DATABASE_URL: database.url, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', ...env },
    logDestination: logs,
  });
  return {
    service,
    logs,
    database,
    async close() {
      await service.stop();
      await database.drop();
    },
  };
}
