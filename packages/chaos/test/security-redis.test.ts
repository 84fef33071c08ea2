import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, LightbusError, createBus } from '@lightbus/core';
import { transportPlugin } from '@lightbus/redis';
import { startRedis, testCertificates, type RedisInstance } from '@lightbus/test-infra';
import { capturingLogger, createChaosBus, uniqueApiName } from '../src/harness.js';
import { errorTexts, leaks } from '../src/secrets.js';
import { startWorker, waitUntil, type WorkerHandle } from '../src/worker-handle.js';
import { chaosApi } from '../src/api.js';

const closers: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
});

describe('Redis over TLS (rediss://, the harness CA)', () => {
  let redis: RedisInstance;
  beforeAll(async () => {
    redis = await startRedis({ appendonly: false, tls: true });
    closers.push(() => redis.stop());
  });

  it('a worker (trusting the CA through NODE_EXTRA_CA_CERTS) and a caller (an ioredis client with the CA) talk over TLS only', async () => {
    const apiName = uniqueApiName('tls');
    const worker: WorkerHandle = startWorker(
      { apiName, transport: 'redis', transportOptions: { url: redis.url, block_timeout_ms: 250 }, serviceName: 'chaos_tls', processName: 'tls-worker', serveRpcs: true, listenerName: 'tls_listener' },
      undefined,
      { NODE_EXTRA_CA_CERTS: testCertificates().caFile },
    );
    closers.push(() => worker.kill());
    await worker.ready();
    const client = new Redis(redis.url, { tls: { ca: testCertificates().ca, servername: 'localhost' }, lazyConnect: true });
    closers.push(async () => client.disconnect());
    const { bus, client: api } = createChaosBus({ apiName, transportOptions: { client } });
    closers.push(() => bus.close({ timeoutMs: 1000 }));
    expect(await api.echo({ value: 'over tls' })).toBe('over tls');
    await api.tick.fire({ seq: 1 });
    expect(await waitUntil(() => worker.lines.some((l) => l.t === 'done' && l.seq === 1), 10_000)).toBe(true);
    expect(redis.url.startsWith('rediss://')).toBe(true);
  });

  it('a client that does not trust the CA fails within the deadline with a Lightbus error, and says why in the log', async () => {
    const apiName = uniqueApiName('tls_untrusted');
    const logger = capturingLogger();
    const { bus, client } = createChaosBus({ apiName, transportOptions: { url: redis.url }, register: false, logger });
    closers.push(() => bus.close({ timeoutMs: 1000 }));
    const started = Date.now();
    const error = await client.echo({ value: 'x' }, { timeout: 1 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(LightbusError.isInstance(error)).toBe(true);
    expect(logger.lines.join('\n')).toMatch(/certificate|self[- ]signed|unable to verify/i);
  });
});

describe('Redis ACL user and password', () => {
  let redis: RedisInstance;
  beforeAll(async () => {
    redis = await startRedis({ appendonly: false, acl: true });
    closers.push(() => redis.stop());
  });

  it('works with the right credentials in the URL, and the password is never logged', async () => {
    const apiName = uniqueApiName('acl');
    const logger = capturingLogger();
    const { bus, client } = createChaosBus({ apiName, transportOptions: { url: redis.url }, logger });
    closers.push(() => bus.close({ timeoutMs: 1000 }));
    const seen: number[] = [];
    client.tick.listen(({ seq }) => void seen.push(seq), { listenerName: 'acl_listener', since: 'all' });
    await bus.start();
    expect(await client.echo({ value: 'authenticated' })).toBe('authenticated');
    await client.tick.fire({ seq: 7 });
    expect(await waitUntil(() => seen.includes(7), 10_000)).toBe(true);
    const description = JSON.stringify(bus.describe());
    expect(leaks([...logger.lines, description], [redis.user!.password])).toEqual([]);
  });

  it('a wrong password fails with a Lightbus error; neither password appears in the error, its causes or the logs', async () => {
    const apiName = uniqueApiName('acl_wrong');
    const logger = capturingLogger();
    const wrongPassword = `wrong-${redis.user!.password.slice(0, 6)}-Zq81`;
    const url = `redis://${redis.user!.username}:${wrongPassword}@127.0.0.1:${redis.port}`;
    const { bus, client } = createChaosBus({ apiName, transportOptions: { url }, register: false, logger });
    closers.push(() => bus.close({ timeoutMs: 1000 }));
    const callError = await client.echo({ value: 'x' }, { timeout: 1 }).catch((e: unknown) => e);
    expect(LightbusError.isInstance(callError)).toBe(true);
    // A worker start must fail too, not hang.
    const worker = createChaosBus({ apiName, transportOptions: { url }, logger });
    closers.push(() => worker.bus.close({ timeoutMs: 1000 }));
    worker.client.tick.listen(() => undefined, { listenerName: 'acl_wrong_listener' });
    const startError = await Promise.race([worker.bus.start().then(() => 'started'), new Promise((r) => setTimeout(() => r('still starting after 10 s'), 10_000))]).catch((e: unknown) => e);
    console.log('start with a wrong password:', LightbusError.isInstance(startError) ? `${startError.code}: ${startError.message}` : startError);
    expect(LightbusError.isInstance(startError)).toBe(true);
    const texts = [...errorTexts(callError), ...errorTexts(startError), ...logger.lines];
    expect(leaks(texts, [wrongPassword, redis.user!.password])).toEqual([]);
    expect(texts.join('\n')).toMatch(/WRONGPASS|NOAUTH|auth/i);
  });

  it('a config error about a URL with credentials does not print the password', () => {
    const password = 'Sup3r-Secret-Pa55';
    const url = `redis://someone:${password}@127.0.0.1:1`;
    const error = (() => {
      try {
        createBus({ transports: [transportPlugin], config: { apis: { default: { event_transport: { redis: { url, batch_size: -5 } } } } } });
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    expect(LightbusError.isInstance(error) && error.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(leaks(errorTexts(error), [password])).toEqual([]);
  });
});

describe('limits', () => {
  let redis: RedisInstance;
  let raw: Redis;
  beforeAll(async () => {
    redis = await startRedis({ appendonly: false });
    raw = new Redis(redis.url);
    closers.push(() => redis.stop());
    closers.push(async () => raw.disconnect());
  });

  it('max_message_bytes: oversized events and RPC arguments are refused with LB_MESSAGE_TOO_LARGE before anything is written', async () => {
    const apiName = uniqueApiName('size');
    const { bus, client } = createChaosBus({ apiName, transportOptions: { url: redis.url }, apiConfig: { max_message_bytes: 2048 } });
    closers.push(() => bus.close({ timeoutMs: 1000 }));
    const big = 'x'.repeat(4096);
    const fireError = await client.tick.fire({ seq: 1, payload: big }).catch((e: unknown) => e);
    expect(LightbusError.isInstance(fireError) && fireError.code).toBe(ErrorCodes.MESSAGE_TOO_LARGE);
    const callError = await client.echo({ value: big }).catch((e: unknown) => e);
    expect(LightbusError.isInstance(callError) && callError.code).toBe(ErrorCodes.MESSAGE_TOO_LARGE);
    expect(await raw.xlen(`${apiName}.*:stream`)).toBe(0);
    expect(await raw.llen(`${apiName}:rpc_queue`)).toBe(0);
    // Under the limit it goes through.
    await client.tick.fire({ seq: 2, payload: 'x'.repeat(1000) });
    expect(await raw.xlen(`${apiName}.*:stream`)).toBe(1);
  });

  it("the transport's max_message_bytes: an oversized raw entry is dead-lettered, not handled; the next event is", async () => {
    const apiName = uniqueApiName('size_in');
    const stream = `${apiName}.*:stream`;
    const seen: number[] = [];
    const { bus, client } = createChaosBus({ apiName, transportOptions: { url: redis.url, max_message_bytes: 4096, block_timeout_ms: 250 } });
    closers.push(() => bus.close({ timeoutMs: 1000 }));
    client.tick.listen(({ seq }) => void seen.push(seq), { listenerName: 'size_listener', since: 'all' });
    await bus.start();
    await raw.xadd(stream, '*', 'id', 'big-1', 'api_name', apiName, 'event_name', 'tick', 'version', '1', ':seq', '1', ':payload', JSON.stringify('y'.repeat(10_000)));
    await client.tick.fire({ seq: 2 });
    expect(await waitUntil(() => seen.includes(2), 10_000)).toBe(true);
    expect(await waitUntil(async () => (await raw.xlen(`${stream}:dead_letters`)) === 1, 5000)).toBe(true);
    expect(seen).not.toContain(1);
  });

  it('listener concurrency: never more handlers at once than asked, and exactly that many under load', async () => {
    const apiName = uniqueApiName('concurrency');
    const { bus, client } = createChaosBus({ apiName, transportOptions: { url: redis.url, block_timeout_ms: 250 } });
    closers.push(() => bus.close({ timeoutMs: 2000 }));
    for (let seq = 1; seq <= 30; seq++) await client.tick.fire({ seq });
    const observed: Record<string, { running: number; max: number; order: number[] }> = {};
    for (const [name, concurrency] of [
      ['three', 3],
      ['one', 1],
    ] as const) {
      const state = { running: 0, max: 0, order: [] as number[] };
      observed[name] = state;
      client.tick.listen(
        async ({ seq }) => {
          state.running++;
          state.max = Math.max(state.max, state.running);
          await new Promise((r) => setTimeout(r, 30));
          state.order.push(seq);
          state.running--;
        },
        { listenerName: `conc_${name}`, concurrency, since: 'all', batchSize: 10 },
      );
    }
    await bus.start();
    expect(await waitUntil(() => observed['three']!.order.length === 30 && observed['one']!.order.length === 30, 20_000)).toBe(true);
    expect(observed['three']!.max).toBe(3);
    expect(observed['one']!.max).toBe(1);
    expect(observed['one']!.order).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });
});

describe('secrets in a worker process', () => {
  it("the worker's logs never show the ACL password, even while Redis is down", async () => {
    const redis = await startRedis({ appendonly: false, acl: true });
    closers.push(() => redis.stop());
    const apiName = uniqueApiName('acl_worker');
    chaosApi(apiName);
    const worker = startWorker({ apiName, transport: 'redis', transportOptions: { url: redis.url, block_timeout_ms: 250 }, serviceName: 'chaos_acl', processName: 'acl-worker', serveRpcs: true, listenerName: 'acl' });
    closers.push(() => worker.kill());
    await worker.ready();
    await redis.kill();
    await new Promise((r) => setTimeout(r, 1500));
    await redis.restart();
    await new Promise((r) => setTimeout(r, 500));
    expect(worker.logs.length).toBeGreaterThan(0);
    expect(leaks([worker.proc.output()], [redis.user!.password])).toEqual([]);
  });
});


