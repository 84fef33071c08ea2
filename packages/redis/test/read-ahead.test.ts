/**
 * Behind a backlog a listener reads one batch ahead: when a read comes back full, the next
 * XREADGROUP reaches Redis before the batch's handlers run, so Redis prepares the next batch while
 * the worker works (a backlog drains faster). What each test watches is when Redis ran the
 * command (MONITOR's timestamps), against a handler that keeps the process busy.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createBus, defineApi, event, silentLogger, Type } from '@lightbus/core';
import { eventually } from '@lightbus/transport-test-suite';
import { transportPlugin } from '../src/index.js';
import { createCommandClient } from '../src/client.js';
import { REDIS_URL, cleanupKeys, openMonitor, rawRedis } from './helpers.js';

const id = randomBytes(5).toString('hex');
const apiName = `lbtest_${id}.ahead`;
const api = defineApi({ name: apiName, events: { happened: event({ parameters: { n: Type.Number() } }) } });
const service = `svc_${id}`;
const redis = { redis: { url: REDIS_URL } };
const config = {
  service_name: service,
  bus: { schema: { transport: redis } },
  apis: { default: { rpc_transport: redis, result_transport: redis, event_transport: redis } },
};

/** Keeps the process busy without giving the event loop a turn. */
function spin(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy
  }
}

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  await cleanupKeys(id);
});
afterAll(async () => {
  await rawRedis().quit();
});

describe('a Redis listener behind a backlog', () => {
  it('has the next batch read while the handlers of this one run', async () => {
    const producer = createBus({ apis: [], config, logger: silentLogger, processName: 'producer', transports: [transportPlugin] });
    producer.registerApi(api, {});
    await Promise.all(Array.from({ length: 20 }, (_, n) => producer.api(apiName).fire('happened', { n })));
    await producer.close({ timeoutMs: 2000 });

    const group = `${service}-ahead`;
    const reads: number[] = [];
    const monitor = await openMonitor((args, atMs) => {
      if (args[0]?.toUpperCase() === 'XREADGROUP' && args[2] === group && args[args.length - 1] === '>') reads.push(atMs);
    });
    closers.push(async () => monitor.close());

    const worker = createBus({ apis: [api], config, logger: silentLogger, processName: 'worker', transports: [transportPlugin] });
    closers.push(() => worker.close({ timeoutMs: 2000 }));
    let busyFrom = 0;
    let busyUntil = 0;
    let handled = 0;
    worker.api(apiName).listen(['happened'], ({ n }) => {
      handled++;
      // The first event of the first batch: a handler that holds the process for 300 ms.
      if (n === 0) {
        busyFrom = Date.now();
        spin(300);
        busyUntil = Date.now();
      }
    }, { listenerName: 'ahead', since: 'all', batchSize: 10, concurrency: 1 });
    await worker.start();
    await eventually(() => handled === 20, 5000, 'all 20 events handled');
    await eventually(() => reads.length >= 2, 2000, 'the reads seen by MONITOR');
    // The first read found 10 (a full batch); the second went to Redis during the busy handler,
    // not once the process was free again.
    expect(reads[1]!).toBeGreaterThanOrEqual(busyFrom - 50);
    expect(reads[1]!).toBeLessThan(busyUntil - 200);
  });

  it('flushes a command at once on request, before the tick ends', async () => {
    const client = createCommandClient({ url: REDIS_URL }, silentLogger, 'test');
    await client.connect();
    closers.push(() => client.close());
    await client.send(['PING']);
    const sentAt = Date.now();
    const time = client.send(['TIME']) as Promise<[string, string]>;
    client.flush?.();
    spin(300);
    const [seconds, micros] = await time;
    const ranAt = Number(seconds) * 1000 + Number(micros) / 1000;
    expect(client.flush).toBeTypeOf('function');
    expect(ranAt).toBeLessThan(sentAt + 200);
  });
});
