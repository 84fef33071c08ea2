/**
 * The result transport waits for every caller of a process on one blocking connection (one
 * `BLPOP` over all awaited keys). What callers depend on: each gets its own result, a new call
 * is not held up by an older one still waiting, one caller giving up does not disturb the others,
 * nothing is lost, and it still works where Redis refuses `CLIENT UNBLOCK` or scripts.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { newContext, eventually } from '@lightbus/transport-test-suite';
import { ErrorCodes, type PendingResult, type ResultMessage } from '@lightbus/core';
import { createRedisResultTransport, encodeResult, type RedisResultTransport, type RedisTransportOptions } from '../src/index.js';
import { REDIS_URL, rawRedis, useTestCleanup } from './helpers.js';

const { ids, closers } = useTestCleanup();

function setup(options: RedisTransportOptions = { url: REDIS_URL }) {
  const id = randomBytes(5).toString('hex');
  ids.push(id);
  const ctx = newContext('caller', id);
  const caller = createRedisResultTransport(options, ctx);
  const worker = createRedisResultTransport({ url: REDIS_URL }, { ...ctx, processName: 'worker' });
  closers.push(() => caller.close(), () => worker.close());
  let n = 0;
  const prepare = (procedureName = 'p') => caller.prepare({ id: `${id}-${n++}`, apiName: ctx.apis[0], procedureName });
  const reply = (pending: PendingResult, result: unknown) =>
    worker.send(pending.returnPath, { id: `r-${n++}`, rpcMessageId: pending.returnPath.split(':').pop()!, error: false, result });
  return { id, ctx, caller, worker, prepare, reply };
}

/** Lets the multiplexer issue its BLPOP (a setup pause, not a measurement). */
const settle = () => new Promise((r) => setTimeout(r, 150));

/** Connections open under a client name. */
async function connectionsNamed(name: string): Promise<number> {
  const list = (await rawRedis().client('LIST')) as string;
  return list.split('\n').filter((line) => line.includes(` name=${name} `)).length;
}

describe('redis result transport: many waits on one connection', () => {
  it('gives each of many concurrent callers its own result, over one blocking connection', async () => {
    const id = randomBytes(5).toString('hex');
    const name = `lbtest_${id}`;
    const client = new Redis(REDIS_URL, { connectionName: name, lazyConnect: true });
    await client.connect();
    closers.push(() => client.quit());
    const { prepare, reply } = setup({ client });
    const pendings = await Promise.all(Array.from({ length: 200 }, () => prepare()));
    const waits = pendings.map((p) => p.wait({ timeoutMs: 10_000 }));
    await settle();
    // Answer in a shuffled order, in small bursts.
    const order = pendings.map((_, i) => i).sort(() => Math.random() - 0.5);
    for (let i = 0; i < order.length; i += 7) await Promise.all(order.slice(i, i + 7).map((j) => reply(pendings[j]!, j)));
    const results = await Promise.all(waits);
    expect(results.map((r) => r.result)).toEqual(pendings.map((_, i) => i));
    // The shared connection, and one blocking connection for all 200 waits.
    expect(await connectionsNamed(name)).toBeLessThanOrEqual(2);
  });

  it('does not hold a new call behind an older one that is still waiting', async () => {
    const { prepare, reply } = setup();
    const slow = await prepare('slow');
    const slowWait = slow.wait({ timeoutMs: 20_000 });
    let slowDone = false;
    void slowWait.then(() => (slowDone = true), () => (slowDone = true));
    await settle(); // the BLPOP is blocked on the slow call's key alone
    // The multiplexed BLPOP blocks for 5 s at a time: without the unblock, this wait (2.5 s)
    // would time out before the BLPOP came round again with the new key.
    for (let i = 0; i < 3; i++) {
      const fast = await prepare('fast');
      const fastWait = fast.wait({ timeoutMs: 2500 });
      await reply(fast, `fast-${i}`);
      await expect(fastWait).resolves.toMatchObject({ result: `fast-${i}` });
      await fast.cancel();
      await settle();
    }
    expect(slowDone).toBe(false);
    await reply(slow, 'slow');
    await expect(slowWait).resolves.toMatchObject({ result: 'slow' });
  });

  it('ends only the wait that was aborted or cancelled; the others still get their results', async () => {
    const { prepare, reply } = setup();
    const [a, b, c, d] = await Promise.all([prepare(), prepare(), prepare(), prepare()]);
    const controller = new AbortController();
    const waitA = a.wait({ timeoutMs: 10_000 });
    const waitB = b.wait({ timeoutMs: 10_000, signal: controller.signal });
    const waitC = c.wait({ timeoutMs: 10_000 });
    const waitD = d.wait({ timeoutMs: 10_000 });
    await settle();
    controller.abort();
    await expect(waitB).rejects.toMatchObject({ code: ErrorCodes.ABORTED });
    await c.cancel();
    await expect(waitC).rejects.toMatchObject({ code: ErrorCodes.ABORTED });
    await reply(d, 'd');
    await reply(a, 'a');
    await expect(waitA).resolves.toMatchObject({ result: 'a' });
    await expect(waitD).resolves.toMatchObject({ result: 'd' });
    // The aborted wait may wait again and still get its result.
    await reply(b, 'b');
    await expect(b.wait({ timeoutMs: 5000 })).resolves.toMatchObject({ result: 'b' });
  });

  it('finds results pushed before the caller waits, or even before it prepared', async () => {
    const { ctx, id, caller, prepare, reply } = setup();
    const early = await prepare();
    await reply(early, 'early');
    await settle();
    await expect(early.wait({ timeoutMs: 5000 })).resolves.toMatchObject({ result: 'early' });
    // Pushed straight to the key, before prepare() (another process wrote it).
    const key = `${ctx.apis[0]}.p:result:${id}-before`;
    const blob = encodeResult({ id: 'r', rpcMessageId: `${id}-before`, error: false, result: 'before' } satisfies ResultMessage);
    await rawRedis().lpush(key, blob);
    const before = await caller.prepare({ id: `${id}-before`, apiName: ctx.apis[0], procedureName: 'p' });
    await expect(before.wait({ timeoutMs: 5000 })).resolves.toMatchObject({ result: 'before' });
  });

  it('times out a wait on time while the others go on', async () => {
    const { prepare, reply } = setup();
    const [lonely, answered] = await Promise.all([prepare(), prepare()]);
    const waitAnswered = answered.wait({ timeoutMs: 10_000 });
    await expect(lonely.wait({ timeoutMs: 200 })).rejects.toMatchObject({ code: ErrorCodes.RPC_TIMEOUT });
    await reply(answered, 'ok');
    await expect(waitAnswered).resolves.toMatchObject({ result: 'ok' });
  });

  it('puts a result back in Redis when its caller gave up before it came', async () => {
    const { prepare, reply } = setup();
    const [gone, other] = await Promise.all([prepare(), prepare()]);
    const waitOther = other.wait({ timeoutMs: 10_000 });
    await expect(gone.wait({ timeoutMs: 100 })).rejects.toMatchObject({ code: ErrorCodes.RPC_TIMEOUT });
    // Its key is still watched (prepared, not cancelled): the shared BLPOP, which lists it
    // first, pops the late result before the other one.
    await reply(gone, 'late');
    await reply(other, 'ok');
    await expect(waitOther).resolves.toMatchObject({ result: 'ok' });
    await gone.cancel();
    const key = gone.returnPath.replace('redis+key://', '');
    await eventually(async () => (await rawRedis().llen(key)) === 1, 5000, 'the late result back in its list');
    expect(await rawRedis().ttl(key)).toBeGreaterThan(0);
  });

  it('reports a malformed result or a key of the wrong type to its caller only', async () => {
    const { prepare, reply } = setup();
    const [junk, wrongType, fine] = await Promise.all([prepare(), prepare(), prepare()]);
    const waits = [junk, wrongType, fine].map((p) => p.wait({ timeoutMs: 10_000 }).catch((e: unknown) => e));
    await settle();
    await rawRedis().set(wrongType.returnPath.replace('redis+key://', ''), 'not a list');
    await rawRedis().lpush(junk.returnPath.replace('redis+key://', ''), '{not json');
    await reply(fine, 'fine');
    const [junkError, typeError, fineResult] = await Promise.all(waits);
    expect(junkError).toMatchObject({ code: ErrorCodes.MESSAGE_MALFORMED });
    expect(typeError).toMatchObject({ code: ErrorCodes.MESSAGE_MALFORMED });
    expect(fineResult).toMatchObject({ result: 'fine' });
  });

  it('ends every wait with LB_CLOSED when the transport closes', async () => {
    const { caller, prepare } = setup();
    const waits = (await Promise.all([prepare(), prepare()])).map((p) => p.wait({ timeoutMs: 10_000 }).catch((e: unknown) => e));
    await settle();
    await caller.close();
    for (const error of await Promise.all(waits)) expect(error).toMatchObject({ code: ErrorCodes.CLOSED });
  });

  it('works the same with a node-redis client', async () => {
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    closers.push(() => client.close());
    const { prepare, reply } = setup({ client });
    const slow = await prepare();
    const slowWait = slow.wait({ timeoutMs: 20_000 });
    await settle();
    const pendings = await Promise.all(Array.from({ length: 50 }, () => prepare()));
    const waits = pendings.map((p) => p.wait({ timeoutMs: 2500 }));
    await Promise.all(pendings.map((p, i) => reply(p, i)));
    expect((await Promise.all(waits)).map((r) => r.result)).toEqual(pendings.map((_, i) => i));
    await reply(slow, 'slow');
    await expect(slowWait).resolves.toMatchObject({ result: 'slow' });
  });
});

describe('redis result transport: where Redis refuses what the shared wait needs', () => {
  const users: string[] = [];
  afterEach(async () => {
    for (const user of users.splice(0)) await rawRedis().call('ACL', 'DELUSER', user);
  });

  async function restrictedUrl(rules: string[]): Promise<string> {
    const user = `lbtest_${randomBytes(5).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    users.push(user);
    await rawRedis().call('ACL', 'SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all', ...rules);
    const url = new URL(REDIS_URL);
    url.username = user;
    url.password = password;
    return url.toString();
  }

  async function roundTrips(transport: RedisResultTransport, worker: RedisResultTransport, prefix: string, apiName: string): Promise<void> {
    const slow = await transport.prepare({ id: `${prefix}-slow`, apiName, procedureName: 'p' });
    const slowWait = slow.wait({ timeoutMs: 20_000 });
    await settle();
    const pendings = await Promise.all(Array.from({ length: 20 }, (_, i) => transport.prepare({ id: `${prefix}-${i}`, apiName, procedureName: 'p' })));
    const waits = pendings.map((p) => p.wait({ timeoutMs: 2500 }));
    await Promise.all(pendings.map((p, i) => worker.send(p.returnPath, { id: `r${i}`, rpcMessageId: `${prefix}-${i}`, error: false, result: i })));
    expect((await Promise.all(waits)).map((r) => r.result)).toEqual(pendings.map((_, i) => i));
    await worker.send(slow.returnPath, { id: 'rs', rpcMessageId: `${prefix}-slow`, error: false, result: 'slow' });
    await expect(slowWait).resolves.toMatchObject({ result: 'slow' });
  }

  it('waits on a connection per caller when CLIENT UNBLOCK is not allowed', async () => {
    const url = await restrictedUrl(['-client|unblock']);
    const { id, ctx, caller, worker } = setup({ url });
    await roundTrips(caller, worker, id, ctx.apis[0]);
  });

  it('sweeps with LPOP when scripts are not allowed', async () => {
    const url = await restrictedUrl(['-@scripting']);
    const { id, ctx, caller, worker } = setup({ url });
    await roundTrips(caller, worker, id, ctx.apis[0]);
  });
});
