/**
 * OpenTelemetry tracing for HTTP, Express and pg, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
 * When it is not, nothing of OpenTelemetry is even loaded. Call startTracing() before importing
 * the rest of the service (the service's main does it with a dynamic import), so that the
 * instrumentations can hook the modules as they load.
 */
import { register } from 'node:module';

export interface TracingHandle {
  enabled: boolean;
  shutdown(): Promise<void>;
}

let active: TracingHandle | undefined;

/** Exports the spans still buffered; the service runtime calls it before the process exits. */
export async function flushTracing(): Promise<void> {
  await active?.shutdown();
  active = undefined;
}

export async function startTracing(
  service: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<TracingHandle> {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT) {
    return { enabled: false, shutdown: () => Promise.resolve() };
  }
  // ES modules are patched through a loader hook; it must be registered before they load.
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  const [{ NodeSDK }, { OTLPTraceExporter }, http, express, pg] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-express'),
    import('@opentelemetry/instrumentation-pg'),
  ]);
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? service,
    traceExporter: new OTLPTraceExporter(),
    instrumentations: [
      new http.HttpInstrumentation(),
      new express.ExpressInstrumentation(),
      new pg.PgInstrumentation(),
    ],
  });
  sdk.start();
  active = { enabled: true, shutdown: () => sdk.shutdown() };
  return active;
}
