import { afterAll, describe, expect, it } from 'vitest';
import { newMessageId } from '@lightbus/core';
import { newContext } from '@lightbus/transport-test-suite';
import { createRedisResultTransport } from '../src/index.js';
import { REDIS_URL, cleanupKeys, rawRedis } from './helpers.js';

afterAll(async () => {
  await rawRedis().quit();
});

describe('redis result transport: the blocking-connection pool', () => {
  it('never hands out a connection that a cancelled wait closed', async () => {
    const ctx = newContext();
    const caller = createRedisResultTransport({ url: REDIS_URL }, ctx);
    const worker = createRedisResultTransport({ url: REDIS_URL }, { ...ctx, processName: 'worker' });
    try {
      // Cancel waits while their BLPOP is in flight, many times, so a released connection
      // would end up in the pool if the race were there.
      for (let i = 0; i < 60; i++) {
        const pending = await caller.prepare({ id: newMessageId(), apiName: ctx.apis[0], procedureName: 'p' });
        // Short waits whose BLPOP times out about when the cancel comes.
        const waiting = pending.wait({ timeoutMs: 20 + (i % 10) }).catch((e: unknown) => e);
        await new Promise((r) => setTimeout(r, 20 + (i % 7)));
        await pending.cancel();
        await waiting;
      }
      // Every later wait must still work (no "Connection is closed").
      const rpc = { id: newMessageId(), apiName: ctx.apis[0], procedureName: 'p' };
      const results = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const pending = await caller.prepare({ ...rpc, id: `${rpc.id}-${i}` });
          const waiting = pending.wait({ timeoutMs: 5000 });
          await worker.send(pending.returnPath, { id: newMessageId(), rpcMessageId: `${rpc.id}-${i}`, error: false, result: i });
          return (await waiting).result;
        }),
      );
      expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i));
    } finally {
      await caller.close();
      await worker.close();
      await cleanupKeys(ctx.id);
    }
  });
});
