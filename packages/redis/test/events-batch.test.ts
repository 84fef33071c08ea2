/**
 * Concurrent sends go out as one script call per stream (`XADD_MANY_SCRIPT`). What a user and a
 * Python reader depend on: the stream holds exactly the entries one XADD per event would write,
 * in order; every sender gets its own outcome; a flushed script cache or a Redis that refuses
 * scripts still gets every event. On a Redis of our own (free port), since these tests flush the
 * script cache and change ACL users. Skipped, visibly, when redis-server is not installed.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newContext } from '@lightbus/transport-test-suite';
import { ErrorCodes, LightbusError, type EventMessage } from '@lightbus/core';
import { createRedisEventTransport, encodeEventFields } from '../src/index.js';
import { capturingLogger, commandCalls, redisServerInstalled, scriptCalls, usePrivateRedis } from './helpers.js';

const available = redisServerInstalled;
const title = available ? 'batched event sends' : 'batched event sends (SKIPPED: redis-server not found; apt-get install redis-server)';

/**
 * Sends `messages` in order from one loop that yields every 30 sends: bursts go out while
 * earlier ones are still in flight.
 */
async function sendWithBurstsInFlight(events: { send(m: EventMessage): Promise<unknown> }, messages: readonly EventMessage[]): Promise<void> {
  const sent: Promise<unknown>[] = [];
  for (let n = 0; n < messages.length; n++) {
    sent.push(events.send(messages[n]!));
    if (n % 30 === 29) await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(sent);
}

function message(apiName: string, n: number, kwargs?: Record<string, unknown>): EventMessage {
  return {
    id: randomUUID(),
    apiName,
    eventName: 'happened',
    version: 1 + (n % 3),
    kwargs: kwargs ?? { n, text: `héllo ✓ "${n}" \\ \n`, nested: { list: [n, null, true], empty: {} }, skipped: undefined },
  };
}

describe.skipIf(!available)(title, () => {
  const redis = usePrivateRedis();

  /** A new ACL user allowed everything but scripts (delete it with `ACL DELUSER`). */
  async function userWithoutScripts(): Promise<string> {
    const user = `noscripts_${randomUUID().slice(0, 8)}`;
    await redis.admin.call('ACL', 'SETUSER', user, 'on', '>pw-for-tests', '~*', '+@all', '-@scripting');
    return user;
  }
  const urlOf = (user: string) => redis.url.replace('redis://', `redis://${user}:pw-for-tests@`);

  it('writes exactly the entries of one XADD per event, in order, in one script call per 100 events', async () => {
    for (const max_stream_length of [100_000, null]) {
      const api = `batch_${randomUUID().slice(0, 8)}.api`;
      const events = createRedisEventTransport({ url: redis.url, max_stream_length }, newContext('p1'));
      try {
        const messages = Array.from({ length: 250 }, (_, n) => message(api, n, n === 7 ? {} : undefined));
        const before = await commandCalls(redis.admin);
        const ids = await Promise.all(messages.map((m) => events.send(m)));
        const after = await commandCalls(redis.admin);
        expect(ids).toHaveLength(250);
        // Sent together: script calls, not 250 commands (the XADDs are the script's); a burst
        // goes out every 100 events; by source (EVAL), never EVALSHA.
        expect(scriptCalls(before, after)).toBe(3);
        expect((after['eval'] ?? 0) - (before['eval'] ?? 0)).toBe(3);
        expect((after['xadd'] ?? 0) - (before['xadd'] ?? 0)).toBe(250);
        const stream = events.streamOf(api, 'happened');
        const stored = await redis.admin.xrange(stream, '-', '+');
        expect(stored.map(([, fields]) => fields)).toEqual(messages.map((m) => encodeEventFields(m)));
        if (max_stream_length === null) expect(await redis.admin.xlen(stream)).toBe(250);
      } finally {
        await events.close();
      }
    }
  });

  it('stores a mixed burst exactly: runs of one event share a header, any change starts a new run', async () => {
    const api = `batch_${randomUUID().slice(0, 8)}.api`;
    const events = createRedisEventTransport({ url: redis.url }, newContext('p1'));
    try {
      // One per-API stream; runs broken by the event name, a missing parameter, the order of the
      // parameters, the version, and a parameter named like a metadata field.
      const shapes: Array<[string, number, Record<string, unknown>]> = [
        ['created', 1, { a: 1, b: 'x' }],
        ['created', 1, { a: 2, b: 'y' }],
        ['deleted', 1, { a: 3, b: 'z' }],
        ['created', 1, { a: 4 }],
        ['created', 1, { b: 'w', a: 5 }],
        ['created', 2, { b: 'v', a: 6 }],
        ['created', 2, { id: 'not the id', version: 9 }],
        ['created', 2, {}],
        ['created', 2, {}],
      ];
      const messages: EventMessage[] = [];
      for (let round = 0; round < 10; round++) {
        for (const [eventName, version, kwargs] of shapes) messages.push({ id: randomUUID(), apiName: api, eventName, version, kwargs });
      }
      const before = await commandCalls(redis.admin);
      await Promise.all(messages.map((m) => events.send(m)));
      const after = await commandCalls(redis.admin);
      expect((after['eval'] ?? 0) - (before['eval'] ?? 0)).toBe(1);
      const stream = events.streamOf(api, 'created');
      expect(events.streamOf(api, 'deleted')).toBe(stream);
      const stored = await redis.admin.xrange(stream, '-', '+');
      expect(stored.map(([, fields]) => fields)).toEqual(messages.map((m) => encodeEventFields(m)));
    } finally {
      await events.close();
    }
  });

  it('still sends every event after the script cache was flushed (NOSCRIPT: loads it again)', async () => {
    const api = `batch_${randomUUID().slice(0, 8)}.api`;
    const events = createRedisEventTransport({ url: redis.url }, newContext('p1'));
    try {
      await Promise.all(Array.from({ length: 20 }, (_, n) => events.send(message(api, n))));
      await redis.admin.script('FLUSH');
      await Promise.all(Array.from({ length: 20 }, (_, n) => events.send(message(api, 20 + n))));
      await Promise.all(Array.from({ length: 20 }, (_, n) => events.send(message(api, 40 + n))));
      expect(await redis.admin.xlen(events.streamOf(api, 'happened'))).toBe(60);
    } finally {
      await events.close();
    }
  });

  it('keeps events in the order they were fired across a script cache flush', async () => {
    const api = `batch_${randomUUID().slice(0, 8)}.api`;
    const events = createRedisEventTransport({ url: redis.url }, newContext('p1'));
    try {
      await Promise.all(Array.from({ length: 20 }, (_, n) => events.send(message(api, n))));
      await redis.admin.script('FLUSH');
      // Fired in order by one loop that yields now and then: bursts go out while earlier ones
      // are still in flight. A NOSCRIPT retry of an early burst would land after later bursts.
      const messages = Array.from({ length: 3000 }, (_, n) => message(api, n));
      await sendWithBurstsInFlight(events, messages);
      const stored = await redis.admin.xrange(events.streamOf(api, 'happened'), '-', '+');
      expect(stored.slice(20).map(([, fields]) => fields[1])).toEqual(messages.map((m) => m.id));
    } finally {
      await events.close();
    }
  });

  it('falls back to one XADD per event when Redis refuses scripts to this user', async () => {
    const api = `batch_${randomUUID().slice(0, 8)}.api`;
    const user = await userWithoutScripts();
    const lines: string[] = [];
    const events = createRedisEventTransport({ url: urlOf(user) }, { ...newContext('p1'), logger: capturingLogger(lines) });
    try {
      const messages = Array.from({ length: 30 }, (_, n) => message(api, n));
      await Promise.all(messages.map((m) => events.send(m)));
      await Promise.all(messages.slice(0, 10).map((m) => events.send({ ...m, id: randomUUID() })));
      const stored = await redis.admin.xrange(events.streamOf(api, 'happened'), '-', '+');
      expect(stored.slice(0, 30).map(([, fields]) => fields)).toEqual(messages.map((m) => encodeEventFields(m)));
      expect(stored).toHaveLength(40);
      expect(lines.filter((l) => l.includes('one XADD each'))).toHaveLength(1);
    } finally {
      await events.close();
      await redis.admin.call('ACL', 'DELUSER', user);
    }
  });

  it('keeps events in the order they were fired when Redis refuses scripts with many bursts in flight', async () => {
    const api = `batch_${randomUUID().slice(0, 8)}.api`;
    const user = await userWithoutScripts();
    const events = createRedisEventTransport({ url: urlOf(user) }, { ...newContext('p1'), logger: capturingLogger([]) });
    try {
      // Bursts leave while earlier ones are still in flight: the first refusals come back after
      // later bursts were written, and their entries must still land first.
      const messages = Array.from({ length: 3000 }, (_, n) => message(api, n));
      await sendWithBurstsInFlight(events, messages);
      const stored = await redis.admin.xrange(events.streamOf(api, 'happened'), '-', '+');
      expect(stored.map(([, fields]) => fields[1])).toEqual(messages.map((m) => m.id));
    } finally {
      await events.close();
      await redis.admin.call('ACL', 'DELUSER', user);
    }
  });

  it('fails only the events whose stream cannot take them; the others of the same flush are stored', async () => {
    const good = `batch_${randomUUID().slice(0, 8)}.good`;
    const bad = `batch_${randomUUID().slice(0, 8)}.bad`;
    const events = createRedisEventTransport({ url: redis.url }, newContext('p1'));
    try {
      await redis.admin.set(events.streamOf(bad, 'happened'), 'not a stream');
      const results = await Promise.allSettled([...Array.from({ length: 5 }, (_, n) => events.send(message(good, n))), ...Array.from({ length: 5 }, (_, n) => events.send(message(bad, n)))]);
      expect(results.slice(0, 5).every((r) => r.status === 'fulfilled')).toBe(true);
      for (const r of results.slice(5)) {
        expect(r.status).toBe('rejected');
        const error = (r as PromiseRejectedResult).reason as LightbusError;
        expect(LightbusError.isInstance(error)).toBe(true);
        expect(error.code).toBe(ErrorCodes.TRANSPORT_ERROR);
        expect(error.message).toMatch(/WRONGTYPE/);
      }
      expect(await redis.admin.xlen(events.streamOf(good, 'happened'))).toBe(5);
    } finally {
      await events.close();
    }
  });
});
