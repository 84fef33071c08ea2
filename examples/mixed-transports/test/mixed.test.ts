import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { MixOptions } from '../src/config.js';
import { runShop } from '../src/shop.js';

// Two processes, the real brokers: the payments worker in a child process, the shop here.
// Redis database 12 keeps the fixed API name `payments` apart from other tests; NATS subjects
// and RabbitMQ names get a per-test prefix.
const REDIS_URL = 'redis://127.0.0.1:6379/12';
const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
const workers: ChildProcess[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const w of workers.splice(0)) if (w.exitCode === null) w.kill('SIGKILL');
  for (const c of cleanups.splice(0)) await c().catch(() => undefined);
});

async function startWorker(env: Record<string, string>): Promise<void> {
  const worker = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../src/payments-service.ts', import.meta.url))], {
    env: { ...process.env, ...env, LIGHTBUS_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  workers.push(worker);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the payments worker did not start within 20 s')), 20_000);
    worker.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('payments_service ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    worker.once('exit', (code) => reject(new Error(`the payments worker exited with code ${code}`)));
  });
}

async function cleanRedis(): Promise<void> {
  const redis = new Redis(REDIS_URL);
  const keys = [...(await redis.keys('payments*')), ...(await redis.keys('schema*')), ...(await redis.keys('rpc_expiry_key:*'))];
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
}

describe('one bus over several brokers, in two processes', () => {
  it('RPC and results over NATS, events and schemas over Redis', async () => {
    const prefix = `lbmix_${randomBytes(4).toString('hex')}`;
    cleanups.push(cleanRedis);
    const mix: MixOptions = { events: 'redis', redisUrl: REDIS_URL, prefix };
    await startWorker({ EVENTS: 'redis', REDIS_URL, PREFIX: prefix });
    const { results, heard } = await runShop(3, mix, () => undefined);
    expect(results.map((r) => r.amountCents)).toEqual([1000, 2000, 3000]);
    expect(heard).toEqual(['order-1', 'order-2', 'order-3']);
    // Read the brokers directly: events and the schema are in Redis; no call went through Redis.
    const redis = new Redis(REDIS_URL);
    try {
      const entries = await redis.xrange('payments.*:stream', '-', '+');
      expect(entries.filter(([, fields]) => fields.includes('charged')).length).toBe(3);
      expect(await redis.exists('schema:payments')).toBe(1);
      expect(await redis.exists('payments:rpc_queue')).toBe(0);
      expect(await redis.keys('rpc_expiry_key:*')).toEqual([]);
    } finally {
      await redis.quit();
    }
  });

  it('RPC and results over NATS, events over RabbitMQ, schemas over Redis', async () => {
    const prefix = `lbmix_${randomBytes(4).toString('hex')}`;
    cleanups.push(cleanRedis);
    cleanups.push(async () => {
      const connection = await amqplib.connect(AMQP_URL);
      const channel = await connection.createChannel();
      for (const queue of [`${prefix}.events.shop_service-mark_order_paid`, `${prefix}.dead`]) await channel.deleteQueue(queue);
      for (const exchange of [`${prefix}.events`, `${prefix}.dead`]) await channel.deleteExchange(exchange);
      await connection.close();
    });
    const mix: MixOptions = { events: 'amqp', redisUrl: REDIS_URL, amqpUrl: AMQP_URL, prefix };
    await startWorker({ EVENTS: 'amqp', REDIS_URL, AMQP_URL, PREFIX: prefix });
    const { results, heard } = await runShop(3, mix, () => undefined);
    expect(results.map((r) => r.amountCents)).toEqual([1000, 2000, 3000]);
    expect(heard).toEqual(['order-1', 'order-2', 'order-3']);
    // The listener's queue lives on RabbitMQ; no event stream was written to Redis.
    const connection = await amqplib.connect(AMQP_URL);
    try {
      const channel = await connection.createChannel();
      const queue = await channel.checkQueue(`${prefix}.events.shop_service-mark_order_paid`);
      expect(queue.messageCount).toBe(0); // all three handled and acknowledged
    } finally {
      await connection.close();
    }
    const redis = new Redis(REDIS_URL);
    try {
      expect(await redis.exists('payments.*:stream')).toBe(0);
      expect(await redis.exists('schema:payments')).toBe(1);
    } finally {
      await redis.quit();
    }
  });
});
