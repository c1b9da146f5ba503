import http from 'node:http';
import { msSince, quantile } from './stats.js';

export interface LoadOptions {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  concurrency: number;
  seconds: number;
  /** Stops earlier once this many requests were sent (a bound on the load, not a goal). */
  maxRequests?: number;
}

export interface LoadResult {
  ok: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * A closed loop of `concurrency` clients, each sending its next request when the previous one
 * answers, for `seconds` (and at most `maxRequests`). Only loopback addresses are accepted: the
 * benchmarks load servers they started themselves and nothing else.
 */
export async function load(options: LoadOptions): Promise<LoadResult> {
  const target = new URL(options.url);
  if (!LOOPBACK.has(target.hostname)) {
    throw new Error(`cannot load ${target.hostname}: benchmarks only send to 127.0.0.1`);
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  const latencies: number[] = [];
  let errors = 0;
  let sent = 0;
  const limit = options.maxRequests ?? Number.POSITIVE_INFINITY;
  const until = Date.now() + options.seconds * 1000;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const started = process.hrtime.bigint();
      const req = http.request(
        target,
        { agent, method: options.method ?? 'GET', headers: options.headers },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode !== undefined && res.statusCode < 400) {
              latencies.push(msSince(started));
            } else errors++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(options.body);
    });
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (Date.now() < until && sent < limit) {
        sent++;
        await one();
      }
    }),
  );
  const elapsed = msSince(started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    ok: latencies.length,
    errors,
    rps: latencies.length / elapsed,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
  };
}

/** Polls `url` until it answers 2xx. */
export async function waitForHttp(url: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const response = await fetch(url).catch(() => undefined);
    if (response?.ok) return;
    if (Date.now() > until) throw new Error(`${url} did not answer 2xx within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request to a loopback server, on `agent` (keep-alive), with the whole body read. */
export function send(
  agent: http.Agent,
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  const target = new URL(url);
  if (!LOOPBACK.has(target.hostname)) {
    return Promise.reject(new Error(`cannot send to ${target.hostname}: only 127.0.0.1`));
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      target,
      { agent, method: options.method ?? 'GET', headers: options.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
