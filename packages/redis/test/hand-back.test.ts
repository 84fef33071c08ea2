/**
 * A worker that stops hands back what it holds but will not handle: the entries look timed out
 * at once, so the group's next reclaim pass (a new worker's start-up pass, say) takes them
 * instead of waiting a whole `acknowledgement_timeout`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createBus, defineApi, event, silentLogger, Type } from '@lightbus/core';
import { eventually } from '@lightbus/transport-test-suite';
import { streamKey, transportPlugin } from '../src/index.js';
import { REDIS_URL, cleanupKeys, rawRedis } from './helpers.js';

const id = randomBytes(5).toString('hex');
const apiName = `lbtest_${id}.hand_back`;
const api = defineApi({ name: apiName, events: { happened: event({ parameters: { n: Type.Number() } }) } });
const stream = streamKey(apiName, 'happened', 'per_api');
const service = `svc_${id}`;

/** Long enough that nothing in these tests is reclaimed because it timed out. */
const ACK_TIMEOUT_S = 30;
const redis = { redis: { url: REDIS_URL, acknowledgement_timeout: ACK_TIMEOUT_S } };
function config(retryDelay = 0.05) {
  return {
    service_name: service,
    bus: { schema: { transport: redis } },
    apis: { default: { rpc_transport: redis, result_transport: redis, event_transport: redis, retry_delay: retryDelay, max_retry_delay: retryDelay } },
  };
}

type Pending = [id: string, consumer: string, idleMs: number, deliveries: number];
const pending = async (group: string) => (await rawRedis().xpending(stream, group, '-', '+', 100)) as Pending[];

const buses: Array<{ close(options: { timeoutMs: number }): Promise<void> }> = [];
afterEach(async () => {
  for (const b of buses.splice(0)) await b.close({ timeoutMs: 2000 });
  await cleanupKeys(id);
});
afterAll(async () => {
  await rawRedis().quit();
});

async function fire(count: number): Promise<void> {
  const producer = createBus({ apis: [], config: config(), logger: silentLogger, processName: 'producer', transports: [transportPlugin] });
  producer.registerApi(api, {});
  await Promise.all(Array.from({ length: count }, (_, n) => producer.api(apiName).fire('happened', { n })));
  await producer.close({ timeoutMs: 2000 });
}

describe('a Redis worker that stops', () => {
  it('hands unstarted events back to the group; the next worker takes them at once, not after acknowledgement_timeout', async () => {
    const listenerName = 'slow';
    const group = `${service}-${listenerName}`;
    await fire(10);
    const first = createBus({ apis: [api], config: config(), logger: silentLogger, processName: 'first', transports: [transportPlugin] });
    buses.push(first);
    const handled: Array<[string, number]> = [];
    let release: () => void = () => undefined;
    const blocked = new Promise<void>((r) => (release = r));
    first.api(apiName).listen(['happened'], async ({ n }) => {
      handled.push(['first', n as number]);
      await blocked;
    }, { listenerName, since: 'all', batchSize: 10 });
    await first.start();
    await eventually(() => handled.length === 1, 5000, 'the first event started');
    // Another consumer took two of the held events over meanwhile: those are left alone.
    const held = (await pending(group)).map((r) => r[0]);
    expect(held).toHaveLength(10);
    await rawRedis().xclaim(stream, group, 'thief', 0, held[8]!, held[9]!, 'JUSTID');

    const stopping = first.stop({ timeoutMs: 5000 });
    release();
    await stopping;

    const rows = await pending(group);
    const mine = rows.filter((r) => r[1] === 'first');
    // u0 was handled and acknowledged; u1..u7 handed back, as if timed out; u8, u9 still the thief's.
    expect(mine.map((r) => r[0])).toEqual(held.slice(1, 8));
    for (const [, , idle, deliveries] of mine) {
      expect(Number(idle)).toBeGreaterThanOrEqual(ACK_TIMEOUT_S * 1000);
      expect(Number(deliveries)).toBe(1);
    }
    expect(rows.filter((r) => r[1] === 'thief').map((r) => Number(r[2]))).toSatisfy((idles: number[]) => idles.length === 2 && idles.every((i) => i < 10_000));

    // A worker starting now reclaims them in its start-up pass.
    const second = createBus({ apis: [api], config: config(), logger: silentLogger, processName: 'second', transports: [transportPlugin] });
    buses.push(second);
    const started = Date.now();
    second.api(apiName).listen(['happened'], ({ n }, ev) => void handled.push(['second', n as number + 100 * (ev.deliveryCount - 1)]), { listenerName });
    await second.start();
    await eventually(() => handled.length === 8, 5000, 'the seven handed-back events handled by the second worker');
    expect(Date.now() - started).toBeLessThan(5000);
    // Once each: the start-up reclaim pass comes after the re-read of the worker's own pending
    // entries, so what it claimed is not read a second time.
    await new Promise((r) => setTimeout(r, 300));
    expect(handled).toHaveLength(8);
    // Each is its second delivery (n + 100): the hand-back kept the count, the reclaim raised it.
    expect(handled.slice(1).map(([who, n]) => [who, n]).sort((a, b) => (a[1] as number) - (b[1] as number))).toEqual(
      [1, 2, 3, 4, 5, 6, 7].map((n) => ['second', n + 100]),
    );
  });

  it('leaves nothing stranded when it stops in the middle of a backlog: all it holds is handed back', async () => {
    const listenerName = 'busy';
    const group = `${service}-${listenerName}`;
    // Fast handlers on a backlog: a read is nearly always in flight when the worker stops.
    await fire(6000);
    let handled = 0;
    for (let round = 0; round < 3; round++) {
      const worker = createBus({ apis: [api], config: config(), logger: silentLogger, processName: `busy${round}`, transports: [transportPlugin] });
      worker.api(apiName).listen(['happened'], () => void handled++, { listenerName, since: 'all', batchSize: 20, concurrency: 4 });
      await worker.start();
      const before = handled;
      await eventually(() => handled >= before + 50 + round * 37, 5000, 'the worker under way');
      await worker.close({ timeoutMs: 2000 });
      const rows = (await pending(group)).filter((r) => r[1] === `busy${round}`);
      // Whatever this worker still held is due for reclaim now, read a moment ago or not.
      expect(rows.filter((r) => Number(r[2]) < ACK_TIMEOUT_S * 1000)).toEqual([]);
      expect(handled).toBeLessThan(6000); // stopped mid-backlog
    }
  });

  it('hands back a batch it read ahead: a full read sends the next XREADGROUP before the listener takes its batch', async () => {
    const listenerName = 'ahead';
    const group = `${service}-${listenerName}`;
    await fire(50);
    const first = createBus({ apis: [api], config: config(), logger: silentLogger, processName: 'first', transports: [transportPlugin] });
    buses.push(first);
    const handled: number[] = [];
    let release: () => void = () => undefined;
    const blocked = new Promise<void>((r) => (release = r));
    first.api(apiName).listen(['happened'], async ({ n }) => {
      handled.push(n as number);
      await blocked;
    }, { listenerName, since: 'all', batchSize: 10, concurrency: 1 });
    await first.start();
    // The handler holds the only slot: batch 1 is taken, batch 2 waits to be taken, and batch 3
    // was read ahead when batch 2 came back full. 30 entries are pending for this consumer.
    await eventually(async () => (await pending(group)).length === 30, 5000, 'three batches read');
    const stopping = first.stop({ timeoutMs: 5000 });
    release();
    await stopping;
    expect(handled).toEqual([0]);
    const rows = await pending(group);
    expect(rows).toHaveLength(29);
    // All of them, the batch read ahead included, are due for reclaim at once.
    expect(rows.filter((r) => Number(r[2]) < ACK_TIMEOUT_S * 1000)).toEqual([]);

    const second = createBus({ apis: [api], config: config(), logger: silentLogger, processName: 'second', transports: [transportPlugin] });
    buses.push(second);
    second.api(apiName).listen(['happened'], ({ n }) => void handled.push(n as number), { listenerName });
    await second.start();
    await eventually(() => handled.length === 50, 5000, 'the other 49 events handled by the second worker');
    expect([...handled].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, n) => n));
  });

  it('hands back an event waiting for its retry so that it is due when the retry would have been', async () => {
    const listenerName = 'failing';
    const group = `${service}-${listenerName}`;
    await fire(1);
    // Retries wait 10 s: the worker stops long before.
    const worker = createBus({ apis: [api], config: config(10), logger: silentLogger, processName: 'worker', transports: [transportPlugin] });
    buses.push(worker);
    let calls = 0;
    worker.api(apiName).listen(['happened'], () => {
      calls++;
      throw new Error('not yet');
    }, { listenerName, since: 'all' });
    await worker.start();
    await eventually(() => calls === 1, 5000, 'the first delivery failed');
    await new Promise((r) => setTimeout(r, 100));
    await worker.stop({ timeoutMs: 2000 });
    const [row] = await pending(group);
    expect(row?.[1]).toBe('worker');
    // About 10 s of the retry delay were left: idle is about acknowledgement_timeout - 10 s.
    const idle = Number(row?.[2]);
    expect(idle).toBeGreaterThanOrEqual((ACK_TIMEOUT_S - 10) * 1000);
    expect(idle).toBeLessThan((ACK_TIMEOUT_S - 9) * 1000);
  });
});
