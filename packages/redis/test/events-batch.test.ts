/**
 * Concurrent sends go out as one script call per stream (`XADD_MANY_SCRIPT`). What a user and a
 * Python reader depend on: the stream holds exactly the entries one XADD per event would write,
 * in order; every sender gets its own outcome; a flushed script cache or a Redis that refuses
 * scripts still gets every event. On a Redis of our own (free port), since these tests flush the
 * script cache and change ACL users. Skipped, visibly, when redis-server is not installed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { eventually, newContext } from '@lightbus/transport-test-suite';
import { ErrorCodes, LightbusError, type EventMessage, type Logger } from '@lightbus/core';
import { createRedisEventTransport, encodeEventFields } from '../src/index.js';
import { freePort, redisServerInstalled } from './helpers.js';

const available = redisServerInstalled;
const title = available ? 'batched event sends' : 'batched event sends (SKIPPED: redis-server not found; apt-get install redis-server)';


function message(apiName: string, n: number, kwargs?: Record<string, unknown>): EventMessage {
  return {
    id: randomUUID(),
    apiName,
    eventName: 'happened',
    version: 1 + (n % 3),
    kwargs: kwargs ?? { n, text: `héllo ✓ "${n}" \\ \n`, nested: { list: [n, null, true], empty: {} }, skipped: undefined },
  };
}

/** Calls of each command on the server so far (commandstats), e.g. { xadd: 250, evalsha: 1 }. */
async function commandCalls(redis: Redis): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of (await redis.info('commandstats')).matchAll(/cmdstat_(\w+):calls=(\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}

function capturingLogger(lines: string[]): Logger {
  return { debug: () => undefined, info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) };
}

describe.skipIf(!available)(title, () => {
  let server: ChildProcess | undefined;
  let url = '';
  let admin: Redis;

  beforeAll(async () => {
    const port = await freePort();
    server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    url = `redis://127.0.0.1:${port}`;
    admin = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
    admin.on('error', () => undefined); // refused until the server listens
    await eventually(async () => (await admin.ping()) === 'PONG', 5000, 'redis-server to start');
  }, 10_000);

  afterAll(async () => {
    admin?.disconnect();
    const s = server;
    if (s && s.exitCode === null) {
      await new Promise<void>((resolve) => {
        s.once('exit', () => resolve());
        s.kill('SIGKILL');
      });
    }
  });

  it('writes exactly the entries of one XADD per event, in order, in one script call per stream', async () => {
    for (const max_stream_length of [100_000, null]) {
      const api = `batch_${randomUUID().slice(0, 8)}.api`;
      const events = createRedisEventTransport({ url, max_stream_length }, newContext('p1'));
      try {
        const messages = Array.from({ length: 250 }, (_, n) => message(api, n, n === 7 ? {} : undefined));
        const before = await commandCalls(admin);
        const ids = await Promise.all(messages.map((m) => events.send(m)));
        const after = await commandCalls(admin);
        expect(ids).toHaveLength(250);
        // Sent together: script calls, not 250 commands (the XADDs are the script's).
        expect((after['evalsha'] ?? 0) + (after['eval'] ?? 0) - (before['evalsha'] ?? 0) - (before['eval'] ?? 0)).toBeGreaterThanOrEqual(1);
        expect((after['evalsha'] ?? 0) + (after['eval'] ?? 0) - (before['evalsha'] ?? 0) - (before['eval'] ?? 0)).toBeLessThanOrEqual(2);
        expect((after['xadd'] ?? 0) - (before['xadd'] ?? 0)).toBe(250);
        const stream = events.streamOf(api, 'happened');
        const stored = await admin.xrange(stream, '-', '+');
        expect(stored.map(([, fields]) => fields)).toEqual(messages.map((m) => encodeEventFields(m)));
        if (max_stream_length === null) expect(await admin.xlen(stream)).toBe(250);
      } finally {
        await events.close();
      }
    }
  });

  it('still sends every event after the script cache was flushed (NOSCRIPT: loads it again)', async () => {
    const api = `batch_${randomUUID().slice(0, 8)}.api`;
    const events = createRedisEventTransport({ url }, newContext('p1'));
    try {
      await Promise.all(Array.from({ length: 20 }, (_, n) => events.send(message(api, n))));
      await admin.script('FLUSH');
      await Promise.all(Array.from({ length: 20 }, (_, n) => events.send(message(api, 20 + n))));
      await Promise.all(Array.from({ length: 20 }, (_, n) => events.send(message(api, 40 + n))));
      expect(await admin.xlen(events.streamOf(api, 'happened'))).toBe(60);
    } finally {
      await events.close();
    }
  });

  it('falls back to one XADD per event when Redis refuses scripts to this user', async () => {
    const api = `batch_${randomUUID().slice(0, 8)}.api`;
    const user = `noscripts_${randomUUID().slice(0, 8)}`;
    await admin.call('ACL', 'SETUSER', user, 'on', '>pw-for-tests', '~*', '+@all', '-@scripting');
    const lines: string[] = [];
    const events = createRedisEventTransport({ url: url.replace('redis://', `redis://${user}:pw-for-tests@`) }, { ...newContext('p1'), logger: capturingLogger(lines) });
    try {
      const messages = Array.from({ length: 30 }, (_, n) => message(api, n));
      await Promise.all(messages.map((m) => events.send(m)));
      await Promise.all(messages.slice(0, 10).map((m) => events.send({ ...m, id: randomUUID() })));
      const stored = await admin.xrange(events.streamOf(api, 'happened'), '-', '+');
      expect(stored.slice(0, 30).map(([, fields]) => fields)).toEqual(messages.map((m) => encodeEventFields(m)));
      expect(stored).toHaveLength(40);
      expect(lines.filter((l) => l.includes('one XADD each'))).toHaveLength(1);
    } finally {
      await events.close();
      await admin.call('ACL', 'DELUSER', user);
    }
  });

  it('fails only the events whose stream cannot take them; the others of the same flush are stored', async () => {
    const good = `batch_${randomUUID().slice(0, 8)}.good`;
    const bad = `batch_${randomUUID().slice(0, 8)}.bad`;
    const events = createRedisEventTransport({ url }, newContext('p1'));
    try {
      await admin.set(events.streamOf(bad, 'happened'), 'not a stream');
      const results = await Promise.allSettled([...Array.from({ length: 5 }, (_, n) => events.send(message(good, n))), ...Array.from({ length: 5 }, (_, n) => events.send(message(bad, n)))]);
      expect(results.slice(0, 5).every((r) => r.status === 'fulfilled')).toBe(true);
      for (const r of results.slice(5)) {
        expect(r.status).toBe('rejected');
        const error = (r as PromiseRejectedResult).reason as LightbusError;
        expect(LightbusError.isInstance(error)).toBe(true);
        expect(error.code).toBe(ErrorCodes.TRANSPORT_ERROR);
        expect(error.message).toMatch(/WRONGTYPE/);
      }
      expect(await admin.xlen(events.streamOf(good, 'happened'))).toBe(5);
    } finally {
      await events.close();
    }
  });
});
