/**
 * A Redis of our own (on a free port) that we stop and start again under running loops: the
 * listener reconnects and recreates its group (the restarted Redis lost everything), the RPC
 * worker reconnects, a waiting caller still times out on time, and stopping stays prompt.
 * Skipped, visibly, when redis-server is not installed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { eventually, newContext, Collector } from '@lightbus/transport-test-suite';
import { ErrorCodes, createConsoleLogger, silentLogger, type RpcMessage } from '@lightbus/core';
import { createRedisEventTransport, createRedisResultTransport, createRedisRpcTransport } from '../src/index.js';
import { freePort, redisServerInstalled } from './helpers.js';

const available = redisServerInstalled;
const title = available ? 'with a Redis that restarts' : 'with a Redis that restarts (SKIPPED: redis-server not found; apt-get install redis-server)';


describe.skipIf(!available)(title, () => {
  let port = 0;
  let server: ChildProcess | undefined;

  async function startRedis(): Promise<void> {
    server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
    probe.on('error', () => undefined); // refused until the server listens
    await eventually(async () => (await probe.ping()) === 'PONG', 5000, 'redis-server to start');
    probe.disconnect();
  }
  async function stopRedis(): Promise<void> {
    const s = server;
    server = undefined;
    if (!s || s.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      s.once('exit', () => resolve());
      s.kill('SIGKILL');
    });
  }

  beforeAll(async () => {
    port = await freePort();
    await startRedis();
  }, 10_000);
  afterAll(stopRedis);

  it('resumes listening and serving after Redis restarts empty', { timeout: 30_000 }, async () => {
    const url = `redis://127.0.0.1:${port}`;
    const ctx = { ...newContext('p1'), logger: process.env['DEBUG_LB'] ? createConsoleLogger({ level: 'debug' }) : silentLogger };
    const [api] = ctx.apis;
    const opts = { url, acknowledgement_timeout: 1, block_timeout_ms: 300 };
    const events = createRedisEventTransport(opts, ctx);
    const rpc = createRedisRpcTransport(opts, ctx);
    const results = createRedisResultTransport(opts, ctx);
    const collector = new Collector(events, { listenerName: 'l', events: [{ apiName: api, eventName: 'e' }] });
    const calls: RpcMessage[] = [];
    const controller = new AbortController();
    const serving = (async () => {
      for await (const m of rpc.consume([api], { signal: controller.signal })) calls.push(m);
    })();
    try {
      await new Promise((r) => setTimeout(r, 300));
      await events.send({ id: '1', apiName: api, eventName: 'e', version: 1, kwargs: {} });
      await eventually(() => collector.received.length === 1, 5000, 'the first event');

      await stopRedis();
      // While Redis is down, a waiting caller still gives up on time.
      const pending = await results.prepare({ id: 'w1', apiName: api, procedureName: 'p' });
      const started = Date.now();
      await expect(pending.wait({ timeoutMs: 500 })).rejects.toMatchObject({ code: ErrorCodes.RPC_TIMEOUT });
      expect(Date.now() - started).toBeLessThan(4000);
      await startRedis(); // empty: the stream and the group are gone

      await eventually(async () => {
        await events.send({ id: '2', apiName: api, eventName: 'e', version: 1, kwargs: {} });
        await new Promise((r) => setTimeout(r, 300));
        return collector.received.some((e) => e.message.id === '2');
      }, 15_000, 'an event after the restart');
      await rpc.call({ id: 'c1', apiName: api, procedureName: 'p', kwargs: {}, returnPath: 'redis+key://x' }, { timeoutMs: 5000 });
      await eventually(() => calls.length === 1, 10_000, 'a call after the restart');
    } finally {
      const stopping = Date.now();
      controller.abort();
      await Promise.all([collector.stop(), serving]);
      expect(Date.now() - stopping).toBeLessThan(3000);
      await Promise.all([events.close(), rpc.close(), results.close()]);
    }
  });

  it('stops its loops promptly while Redis is down', { timeout: 20_000 }, async () => {
    if (!server) await startRedis();
    const url = `redis://127.0.0.1:${port}`;
    const ctx = { ...newContext('p1'), logger: process.env['DEBUG_LB'] ? createConsoleLogger({ level: 'debug' }) : silentLogger };
    const [api] = ctx.apis;
    const opts = { url, acknowledgement_timeout: 1, block_timeout_ms: 300 };
    const events = createRedisEventTransport(opts, ctx);
    const rpc = createRedisRpcTransport(opts, ctx);
    const collector = new Collector(events, { listenerName: 'l', events: [{ apiName: api, eventName: 'e' }] });
    const controller = new AbortController();
    const serving = (async () => {
      for await (const _ of rpc.consume([api], { signal: controller.signal })) void _;
    })();
    await new Promise((r) => setTimeout(r, 300));
    await stopRedis();
    await new Promise((r) => setTimeout(r, 500));
    const stopping = Date.now();
    controller.abort();
    await Promise.all([collector.stop(), serving]);
    expect(Date.now() - stopping).toBeLessThan(3000);
    const closing = Date.now();
    await Promise.all([events.close(), rpc.close()]);
    expect(Date.now() - closing).toBeLessThan(3000);
  });

  it('gives callers waiting across a restart their results once Redis is back', { timeout: 30_000 }, async () => {
    if (!server) await startRedis();
    const url = `redis://127.0.0.1:${port}`;
    const ctx = { ...newContext('p1'), logger: process.env['DEBUG_LB'] ? createConsoleLogger({ level: 'debug' }) : silentLogger };
    const [api] = ctx.apis;
    const caller = createRedisResultTransport({ url }, ctx);
    const worker = createRedisResultTransport({ url }, { ...ctx, processName: 'worker' });
    try {
      const before = await caller.prepare({ id: 'r1', apiName: api, procedureName: 'p' });
      const waitBefore = before.wait({ timeoutMs: 20_000 });
      await new Promise((r) => setTimeout(r, 300)); // the shared BLPOP is blocked
      await stopRedis();
      await new Promise((r) => setTimeout(r, 300));
      await startRedis();
      // A call that starts after the restart, and the one that waited through it.
      const after = await caller.prepare({ id: 'r2', apiName: api, procedureName: 'p' });
      const waitAfter = after.wait({ timeoutMs: 20_000 });
      await eventually(async () => {
        await worker.send(after.returnPath, { id: 'x2', rpcMessageId: 'r2', error: false, result: 'after' });
        return true;
      }, 10_000, 'the worker to reconnect');
      await worker.send(before.returnPath, { id: 'x1', rpcMessageId: 'r1', error: false, result: 'before' });
      await expect(waitAfter).resolves.toMatchObject({ result: 'after' });
      await expect(waitBefore).resolves.toMatchObject({ result: 'before' });
    } finally {
      await Promise.all([caller.close(), worker.close()]);
    }
  });
});
