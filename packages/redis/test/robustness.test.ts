/**
 * What goes beyond Python: malformed entries, crashed consumers, vanished groups, dropped
 * connections, cleanup, batched acknowledgements, history filters, per-event streams, and a
 * node-redis client in place of ioredis.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { eventually, newContext, Collector } from '@lightbus/transport-test-suite';
import type { EventMessage, ReceivedEvent } from '@lightbus/core';
import {
  createRedisEventTransport,
  createRedisResultTransport,
  createRedisRpcTransport,
  createRedisSchemaTransport,
  deadLetterKey,
  type RedisEventTransport,
  type RedisTransportOptions,
} from '../src/index.js';
import { REDIS_URL, deadLetters, openMonitor, rawRedis, useTestCleanup } from './helpers.js';

const { ids, closers } = useTestCleanup();

function setup(processName = 'p1') {
  const id = randomBytes(5).toString('hex');
  ids.push(id);
  const ctx = newContext(processName, id);
  const api = ctx.apis[0];
  return { ctx, api, stream: `${api}.*:stream` };
}

function events(ctx: ReturnType<typeof newContext>, extra: RedisTransportOptions = {}): RedisEventTransport {
  const t = createRedisEventTransport({ url: REDIS_URL, acknowledgement_timeout: 1, ...extra }, ctx);
  closers.push(() => t.close());
  return t;
}

function collect(t: RedisEventTransport, api: string, settle: ((e: ReceivedEvent) => Promise<void> | void) | null = (e) => e.ack(), extra: Partial<Parameters<RedisEventTransport['consume']>[0]> = {}): Collector {
  const c = new Collector(t, { listenerName: 'l', events: [{ apiName: api, eventName: 'e' }], ...extra }, settle);
  closers.push(() => c.stop());
  return c;
}

const ev = (api: string, n: number): EventMessage => ({ id: `ev-${n}`, apiName: api, eventName: 'e', version: 1, kwargs: { n } });
const settle = () => new Promise((r) => setTimeout(r, 300));

describe('malformed entries', () => {
  it('dead-letters each with its reason, acknowledges it, and delivers the events after it', async () => {
    const { ctx, api, stream } = setup();
    const t = events(ctx, { max_message_bytes: 2000 });
    const c = collect(t, api);
    await settle();
    const r = rawRedis();
    const meta = (id: string) => ['id', id, 'api_name', api, 'event_name', 'e'];
    await t.send(ev(api, 1));
    await r.xadd(stream, '*', ...meta('no-version'), ':n', '2'); // missing version
    await t.send(ev(api, 3));
    await r.xadd(stream, '*', ...meta('bad-json'), 'version', '1', ':n', '{not json'); // parameter not JSON
    await r.xadd(stream, '*', 'id', '', 'api_name', '', 'event_name', '', 'version', ''); // empty metadata
    await r.xadd(stream, '*', 'something', 'else'); // no metadata at all
    await r.xadd(stream, '*', ...meta('huge'), 'version', '1', ':blob', JSON.stringify('x'.repeat(5000))); // over max_message_bytes
    await r.xadd(stream, '*', ...meta('bad-version'), 'version', 'one', ':n', '1');
    await t.send(ev(api, 5));
    await eventually(() => c.received.length === 3, 5000, 'the three good events');
    expect(c.received.map((e) => e.message.kwargs['n'])).toEqual([1, 3, 5]);
    const dead = (await eventually(async () => {
      const d = await deadLetters(stream);
      return d.length === 6 ? d : undefined;
    }, 3000, 'six dead letters'))!;
    expect(dead.map((d) => d['error'])).toEqual([
      expect.stringContaining('"version"'),
      expect.stringContaining('parameter "n" is not JSON'),
      expect.stringContaining('"id"'),
      expect.stringContaining('"id"'),
      expect.stringContaining('larger than max_message_bytes'),
      expect.stringContaining('whole number'),
    ]);
    for (const d of dead) {
      expect(d['listener']).toBe(`${ctx.serviceName}-l`);
      expect(d['stream']).toBe(stream);
      expect(d['stream_id']).toMatch(/^\d+-\d+$/);
      expect(d['attempts']).toBe('1');
    }
    expect(dead[0]!['id']).toBe('no-version'); // the original fields are kept
    expect(dead[4]![':blob']).toBeUndefined(); // a huge entry is not copied
    await eventually(async () => Number(((await r.call('XPENDING', stream, `${ctx.serviceName}-l`)) as [number])[0]) === 0, 3000, 'nothing pending');
  });
});

describe('consumers that die', () => {
  it('loses nothing when a consumer is killed mid-batch and another takes over', async () => {
    const { ctx, api, stream } = setup('p1');
    const first = events(ctx);
    const handled: number[] = [];
    let acked = 0;
    const a = collect(first, api, async (e) => {
      if (acked < 3) {
        acked++;
        handled.push(e.message.kwargs['n'] as number);
        await e.ack();
      } // the rest of the batch is never settled: the process "dies"
    }, { batchSize: 10 });
    await settle();
    for (let n = 0; n < 10; n++) await first.send(ev(api, n));
    await eventually(() => a.received.length === 10, 5000, 'the batch');
    await first.close(); // killed: connections dropped, nothing more acknowledged
    const secondCtx = { ...ctx, processName: 'p2' };
    const second = events(secondCtx);
    const b = collect(second, api, async (e) => {
      handled.push(e.message.kwargs['n'] as number);
      await e.ack();
    });
    await eventually(() => b.received.length >= 7, 8000, 'the seven unsettled events');
    for (const e of b.received) expect(e.deliveryCount).toBeGreaterThanOrEqual(2);
    await second.send(ev(api, 10));
    await eventually(() => handled.length === 11, 5000, 'the next event');
    expect([...handled].sort((x, y) => x - y)).toEqual(Array.from({ length: 11 }, (_, i) => i));
    await eventually(async () => Number(((await rawRedis().call('XPENDING', stream, `${ctx.serviceName}-l`)) as [number])[0]) === 0, 3000, 'nothing pending');
  });

  it('re-reads its own unacknowledged entries when it restarts with the same name', async () => {
    const { ctx, api } = setup('p1');
    const first = events(ctx);
    const a = collect(first, api, null);
    await settle();
    await first.send(ev(api, 1));
    await eventually(() => a.received.length === 1, 5000, 'the event');
    await a.stop();
    const again = events(ctx, { acknowledgement_timeout: 60 }); // no reclaim: only the re-read can bring it back
    const b = collect(again, api);
    await eventually(() => b.received.length === 1, 3000, 'the re-read');
    expect(b.received[0]!.message.kwargs).toEqual({ n: 1 });
    expect(b.received[0]!.deliveryCount).toBe(2);
  });
});

describe('broken infrastructure', () => {
  it('recreates a vanished group (NOGROUP) and goes on', async () => {
    const { ctx, api, stream } = setup();
    const t = events(ctx);
    const c = collect(t, api);
    await settle();
    await t.send(ev(api, 1));
    await eventually(() => c.received.length === 1, 5000, 'the first event');
    await rawRedis().del(stream); // as after a flush of our keys
    await new Promise((r) => setTimeout(r, 1500));
    await t.send(ev(api, 2));
    await eventually(() => c.received.length === 2, 8000, 'the event after the group came back');
    expect(c.received[1]!.message.kwargs).toEqual({ n: 2 });
  });

  it('resumes consuming and serving RPCs after its connections are killed', async () => {
    const { ctx, api } = setup();
    const name = `lbtest_${ctx.id}_conn`;
    const client = new Redis(REDIS_URL, { connectionName: name });
    closers.push(async () => client.disconnect());
    const t = events(ctx, { client });
    const rpc = createRedisRpcTransport({ client }, ctx);
    closers.push(() => rpc.close());
    const c = collect(t, api);
    const calls: string[] = [];
    const controller = new AbortController();
    const serving = (async () => {
      for await (const m of rpc.consume([api], { signal: controller.signal })) calls.push(m.id);
    })();
    closers.push(async () => {
      controller.abort();
      await serving;
    });
    await settle();
    const list = (await rawRedis().call('CLIENT', 'LIST')) as string;
    const victims = list.split('\n').filter((l) => l.includes(` name=${name} `)).map((l) => /id=(\d+)/.exec(l)![1]!);
    expect(victims.length).toBeGreaterThanOrEqual(3); // shared + blocking connections
    for (const v of victims) await rawRedis().call('CLIENT', 'KILL', 'ID', v);
    await new Promise((r) => setTimeout(r, 500));
    await t.send(ev(api, 1));
    await rpc.call({ id: `call-${ctx.id}`, apiName: api, procedureName: 'p', kwargs: {}, returnPath: 'redis+key://x' }, { timeoutMs: 5000 });
    await eventually(() => c.received.length === 1, 8000, 'the event after reconnecting');
    await eventually(() => calls.length === 1, 8000, 'the call after reconnecting');
  });
});

describe('housekeeping', () => {
  it('removes consumers idle past consumer_ttl and destroys groups left empty, but keeps its own', async () => {
    const { ctx, api, stream } = setup();
    const r = rawRedis();
    await r.xadd(stream, '*', '', '');
    await r.call('XGROUP', 'CREATE', stream, 'other_service-x', '$');
    await r.call('XGROUP', 'CREATECONSUMER', stream, 'other_service-x', 'old_process');
    await r.call('XGROUP', 'CREATE', stream, 'empty_group', '$');
    await new Promise((res) => setTimeout(res, 150));
    const t = events(ctx, { consumer_ttl: 0.1 });
    collect(t, api);
    await settle();
    const groups = ((await r.call('XINFO', 'GROUPS', stream)) as string[][]).map((g) => g[1]);
    expect(groups).toEqual([`${ctx.serviceName}-l`]);
  });

  it('acknowledges events settled in the same tick with one XACK', async () => {
    const { ctx, api } = setup();
    const t = events(ctx);
    const got: ReceivedEvent[] = [];
    const c = collect(t, api, (e) => void got.push(e), { batchSize: 10 });
    await settle();
    for (let n = 0; n < 5; n++) await t.send(ev(api, n));
    await eventually(() => c.received.length === 5, 5000, 'five events');
    const acks: string[][] = [];
    const watcher = await openMonitor((args) => {
      if (String(args[0]).toUpperCase() === 'XACK' && String(args[1]).includes(ctx.id)) acks.push(args);
    });
    await Promise.all(got.map((e) => e.ack()));
    await eventually(() => acks.length >= 1, 3000, 'the XACK');
    await new Promise((res) => setTimeout(res, 100));
    watcher.close();
    expect(acks).toHaveLength(1);
    expect(acks[0]!.slice(3)).toEqual(got.map((e) => e.position));
  });
});

describe('history and stream naming', () => {
  it('filters history by time and reads oldest first', async () => {
    const { ctx, api } = setup();
    const t = events(ctx);
    await t.send(ev(api, 0));
    await new Promise((r) => setTimeout(r, 30));
    const since = new Date();
    await new Promise((r) => setTimeout(r, 5));
    await t.send(ev(api, 1));
    await t.send(ev(api, 2));
    await new Promise((r) => setTimeout(r, 5));
    const until = new Date();
    await new Promise((r) => setTimeout(r, 30));
    await t.send(ev(api, 3));
    const read = async (q: Parameters<NonNullable<RedisEventTransport['history']>>[0]) => {
      const out: number[] = [];
      for await (const h of t.history(q)) out.push(h.message.kwargs['n'] as number);
      return out;
    };
    expect(await read({ apiName: api, since, until })).toEqual([2, 1]);
    expect(await read({ apiName: api, order: 'oldest-first' })).toEqual([0, 1, 2, 3]);
    expect(await read({ apiName: api, order: 'oldest-first', limit: 2, since })).toEqual([1, 2]);
  });

  it('uses one stream per event with stream_use: per_event, and merges them in history', async () => {
    const { ctx, api } = setup();
    const t = events(ctx, { stream_use: 'per_event' });
    const c = new Collector(t, { listenerName: 'both', events: [{ apiName: api, eventName: 'a' }, { apiName: api, eventName: 'b' }] });
    closers.push(() => c.stop());
    await settle();
    await t.send({ id: '1', apiName: api, eventName: 'a', version: 1, kwargs: { n: 1 } });
    await new Promise((r) => setTimeout(r, 3)); // ids of two streams only order across milliseconds
    await t.send({ id: '2', apiName: api, eventName: 'b', version: 1, kwargs: { n: 2 } });
    await eventually(() => c.received.length === 2, 5000, 'both events');
    expect(await rawRedis().exists(`${api}.a:stream`, `${api}.b:stream`)).toBe(2);
    const all: string[] = [];
    for await (const h of t.history({ apiName: api })) all.push(h.message.id);
    expect(all).toEqual(['2', '1']);
    expect(deadLetterKey(`${api}.a:stream`)).toBe(`${api}.a:stream:dead_letters`);
  });
});

describe('a node-redis v5 client', () => {
  it('carries RPCs, results, events and schemas', async () => {
    const { ctx, api } = setup();
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    closers.push(() => client.close());
    const opts = { client, acknowledgement_timeout: 1 };
    const rpc = createRedisRpcTransport(opts, ctx);
    const results = createRedisResultTransport(opts, ctx);
    const ev2 = createRedisEventTransport(opts, ctx);
    const schemas = createRedisSchemaTransport(opts, ctx);
    closers.push(() => Promise.all([rpc.close(), results.close(), ev2.close(), schemas.close()]));
    await schemas.store(api, { events: {}, rpcs: {} }, 60);
    expect((await schemas.load())[api]).toEqual({ events: {}, rpcs: {} });
    const c = collect(ev2, api);
    await settle();
    await ev2.send(ev(api, 7));
    await eventually(() => c.received.length === 1, 5000, 'the event');
    const pending = await results.prepare({ id: 'c1', apiName: api, procedureName: 'p' });
    await rpc.call({ id: 'c1', apiName: api, procedureName: 'p', kwargs: { x: 1 }, returnPath: pending.returnPath }, { timeoutMs: 5000 });
    const controller = new AbortController();
    for await (const call of rpc.consume([api], { signal: controller.signal })) {
      expect(call.kwargs).toEqual({ x: 1 });
      await results.send(call.returnPath, { id: 'r1', rpcMessageId: call.id, error: false, result: 'ok' });
      break;
    }
    await expect(pending.wait({ timeoutMs: 3000 })).resolves.toMatchObject({ result: 'ok', rpcMessageId: 'c1' });
    // A burst: the calls and the results of one tick go as script calls, the worker takes them
    // with its claim script; node-redis carries those too.
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => results.prepare({ id: `b${i}`, apiName: api, procedureName: 'p' })));
    await Promise.all(burst.map((p, i) => rpc.call({ id: `b${i}`, apiName: api, procedureName: 'p', kwargs: { i }, returnPath: p.returnPath }, { timeoutMs: 5000 })));
    const serving = new AbortController();
    const served = (async () => {
      for await (const call of rpc.consume([api], { signal: serving.signal })) {
        void results.send(call.returnPath, { id: `r-${call.id}`, rpcMessageId: call.id, error: false, result: call.kwargs['i'] });
      }
    })();
    const got = await Promise.all(burst.map((p) => p.wait({ timeoutMs: 5000 })));
    serving.abort();
    await served;
    expect(got.map((r) => r.result)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(client.isOpen).toBe(true); // a client we were given stays open
  });
});
