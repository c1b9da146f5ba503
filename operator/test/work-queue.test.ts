import { expect } from 'chai';
import pino from 'pino';
import { silent, waitUntil } from '@vextrus/devkit';
import { Controller, StepError, WorkQueue } from '@vextrus/operator';
import type { Result } from '../src/runtime/controller.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('work queue', () => {
  it('hands out a key added many times once', async () => {
    const queue = new WorkQueue('test');

    queue.add('acme');
    queue.add('acme');
    queue.add('globex');
    queue.add('acme');

    expect(queue.length).to.equal(2);
    expect(await queue.get()).to.equal('acme');
    expect(await queue.get()).to.equal('globex');
    queue.shutDown();
  });

  it('does not hand out a key again while it is processed, and queues it once after done', async () => {
    const queue = new WorkQueue('test');
    queue.add('acme');
    const first = await queue.get();

    queue.add('acme');
    queue.add('acme');
    const whileProcessing = queue.length;
    queue.done('acme');
    const afterDone = queue.length;
    const second = await queue.get();
    queue.done('acme');

    expect(first).to.equal('acme');
    expect(whileProcessing).to.equal(0);
    expect(afterDone).to.equal(1);
    expect(second).to.equal('acme');
    expect(queue.length).to.equal(0);
    queue.shutDown();
  });

  it('delays the retries of a failing key exponentially up to the maximum, per key', () => {
    const queue = new WorkQueue('test', undefined, { baseDelayMs: 10, maxDelayMs: 70 });

    const acme = [1, 2, 3, 4, 5].map(() => queue.addRateLimited('acme'));
    const globex = queue.addRateLimited('globex');

    expect(acme).to.deep.equal([10, 20, 40, 70, 70]);
    expect(globex).to.equal(10);
    expect(queue.retries('acme')).to.equal(5);
    queue.shutDown();
  });

  it('after forget, starts a key again from the base delay', () => {
    const queue = new WorkQueue('test', undefined, { baseDelayMs: 10, maxDelayMs: 1000 });
    queue.addRateLimited('acme');
    queue.addRateLimited('acme');

    queue.forget('acme');

    expect(queue.retries('acme')).to.equal(0);
    expect(queue.addRateLimited('acme')).to.equal(10);
    queue.shutDown();
  });

  it('hands out a key added with a delay only once the delay passed, the earliest request winning', async () => {
    const queue = new WorkQueue('test');

    queue.addAfter('acme', 10_000);
    queue.addAfter('acme', 150);
    queue.addAfter('acme', 5_000);
    await sleep(50);
    const early = queue.length;
    await sleep(250);
    const later = queue.length;

    expect(early).to.equal(0);
    expect(later).to.equal(1);
    expect(await queue.get()).to.equal('acme');
    queue.shutDown();
  });

  it('resolves waiting workers with undefined on shutdown and drops later adds', async () => {
    const queue = new WorkQueue('test');
    const waiting = queue.get();

    queue.shutDown();
    queue.add('acme');

    expect(await waiting).to.equal(undefined);
    expect(queue.length).to.equal(0);
  });
});

describe('controller', () => {
  const controllerWith = (reconcile: (key: string) => Promise<Result>, workers = 4) =>
    new Controller({
      name: 'test',
      logger: silent,
      workers,
      backoff: { baseDelayMs: 20, maxDelayMs: 1_000 },
      reconcile,
    });

  it('never reconciles one key in two workers at once, while other keys run in parallel', async () => {
    let running = 0;
    let overlapping = 0;
    let parallel = 0;
    const active = new Set<string>();
    const calls: string[] = [];
    const controller = controllerWith(async (key) => {
      if (active.has(key)) overlapping += 1;
      active.add(key);
      running += 1;
      parallel = Math.max(parallel, running);
      calls.push(key);
      await sleep(50);
      running -= 1;
      active.delete(key);
      return {};
    });
    controller.start();

    controller.queue.add('acme');
    controller.queue.add('globex');
    await sleep(10);
    controller.queue.add('acme');
    controller.queue.add('acme');
    await sleep(300);
    await controller.stop();

    expect(overlapping).to.equal(0);
    expect(parallel).to.equal(2);
    expect(calls.filter((k) => k === 'acme')).to.have.length(2);
  });

  it('retries a failing key with growing delays and forgets its failures once it succeeds', async () => {
    const times: number[] = [];
    const controller = controllerWith(() => {
      times.push(Date.now());
      if (times.length <= 3) return Promise.reject(new Error('database unavailable'));
      return Promise.resolve({});
    });
    controller.start();

    controller.queue.add('acme');
    await waitUntil('the fourth attempt', () => Promise.resolve(times.length >= 4 || undefined));
    await sleep(100);
    await controller.stop();
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));

    expect(times).to.have.length(4);
    // Backoff 20, 40, 80 ms: each gap is at least its delay (timers never fire early).
    expect(gaps[0]).to.be.at.least(19);
    expect(gaps[1]).to.be.at.least(39);
    expect(gaps[2]).to.be.at.least(79);
    expect(controller.queue.retries('acme')).to.equal(0);
  });

  it('reconciles again after requeueAfter, and not before', async () => {
    const times: number[] = [];
    const controller = controllerWith(() => {
      times.push(Date.now());
      return Promise.resolve(times.length === 1 ? { requeueAfterMs: 200 } : {});
    });
    controller.start();

    controller.queue.add('acme');
    await waitUntil('the second reconcile', () => Promise.resolve(times.length >= 2 || undefined));
    await sleep(300);
    await controller.stop();

    expect(times).to.have.length(2);
    expect((times[1] ?? 0) - (times[0] ?? 0)).to.be.at.least(199);
  });

  it('when a step of a reconcile fails, it logs the step by name and retries the key', async () => {
    const lines: Record<string, unknown>[] = [];
    const write = (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>);
    const logger = pino({ level: 'info' }, { write });
    let calls = 0;
    const controller = new Controller({
      name: 'test',
      logger,
      backoff: { baseDelayMs: 20, maxDelayMs: 1_000 },
      reconcile: () => {
        calls += 1;
        if (calls > 1) return Promise.resolve({});
        return Promise.reject(new StepError('routes', new Error('the API server said no')));
      },
    });
    controller.start();

    controller.queue.add('acme');
    await waitUntil('the retry', () => Promise.resolve(calls >= 2 || undefined));
    await controller.stop();

    const failure = lines.find((line) => line.msg === 'reconcile failed; retrying');
    expect(failure).to.include({ key: 'acme', step: 'routes' });
    expect((failure?.err as { message: string }).message).to.equal(
      'step routes failed: the API server said no',
    );
  });

  it('on stop, waits for the reconciles in progress and starts no more', async () => {
    let finished = 0;
    let started = 0;
    const controller = controllerWith(async () => {
      started += 1;
      await sleep(100);
      finished += 1;
      return {};
    }, 1);
    controller.start();
    controller.queue.add('acme');
    controller.queue.add('globex');
    await sleep(20);

    await controller.stop();

    expect(started).to.equal(1);
    expect(finished).to.equal(1);
  });

  it('started again after stop, reconciles with a new queue the keys added again', async () => {
    const calls: string[] = [];
    const controller = controllerWith((key) => {
      calls.push(key);
      return Promise.resolve({});
    });
    controller.start();
    await controller.stop();
    controller.queue.add('dropped-while-stopped');

    controller.start();
    controller.queue.add('acme');
    await waitUntil('acme to be reconciled', () => Promise.resolve(calls.length > 0 || undefined));
    await controller.stop();

    expect(calls).to.deep.equal(['acme']);
  });
});
