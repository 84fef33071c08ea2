/**
 * Under load, RPC writes and reads go as scripts: the calls of one tick as one `RPC_CALLS_SCRIPT`
 * call, the results of one tick as one `RPC_RESULTS_SCRIPT` call, and a worker takes and claims
 * a burst of calls with one `RPC_POP_CLAIM_SCRIPT` call. What a user and a Python peer depend on:
 * Redis holds exactly what the plain commands write; every call is run at most once, expired
 * ones never; every caller gets its own outcome; a flushed script cache, or a Redis that refuses
 * scripts, changes nothing but the commands. On a Redis of our own (free port), since these tests
 * flush the script cache and change ACL users. Skipped, visibly, when redis-server is missing.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { eventually, newContext } from '@lightbus/transport-test-suite';
import { ErrorCodes, LightbusError, type Logger, type RpcMessage } from '@lightbus/core';
import { createRedisResultTransport, createRedisRpcTransport, encodeCall, encodeResult, rpcExpiryKey, rpcQueueKey, type RedisTransportOptions } from '../src/index.js';
import { capturingLogger, commandCalls, redisServerInstalled, scriptCalls, usePrivateRedis } from './helpers.js';

const title = redisServerInstalled ? 'batched RPC writes and reads' : 'batched RPC writes and reads (SKIPPED: redis-server not found; apt-get install redis-server)';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** A call blob as Python's `json.dumps` writes it: `", "` and `": "` separators, keys sorted. */
function pythonBlob(m: RpcMessage): string {
  const json = (v: unknown) => JSON.stringify(v);
  const meta = `{"api_name": ${json(m.apiName)}, "id": ${json(m.id)}, "procedure_name": ${json(m.procedureName)}, "return_path": ${json(m.returnPath)}}`;
  return `{"kwargs": ${json(m.kwargs)}, "metadata": ${meta}}`;
}

function call(apiName: string, n: number): RpcMessage {
  const id = randomUUID();
  return { id, apiName, procedureName: 'echo', kwargs: { n, text: `héllo ✓ "${n}"` }, returnPath: `redis+key://${apiName}.echo:result:${id}` };
}

describe.skipIf(!redisServerInstalled)(title, () => {
  const redis = usePrivateRedis();
  const newApi = () => `rpcbatch_${randomUUID().slice(0, 8)}.api`;

  /**
   * `n` concurrent calls through a worker that echoes `n`; resolves with the results in call
   * order. Closes both transports.
   */
  async function roundTrip(options: RedisTransportOptions, n: number, logger?: Logger): Promise<unknown[]> {
    const api = newApi();
    const ctx = logger ? { ...newContext('p1'), logger } : newContext('p1');
    const rpc = createRedisRpcTransport(options, ctx);
    const results = createRedisResultTransport(options, ctx);
    const stop = new AbortController();
    const served = (async () => {
      for await (const m of rpc.consume([api], { signal: stop.signal })) {
        void results.send(m.returnPath, { id: randomUUID(), rpcMessageId: m.id, error: false, result: m.kwargs['n'] });
      }
    })();
    try {
      return await Promise.all(
        range(n).map(async (i) => {
          const m = call(api, i);
          const pending = await results.prepare(m);
          try {
            await rpc.call({ ...m, returnPath: pending.returnPath }, { timeoutMs: 5000 });
            return (await pending.wait({ timeoutMs: 5000 })).result;
          } finally {
            await pending.cancel();
          }
        }),
      );
    } finally {
      stop.abort();
      await served;
      await rpc.close();
      await results.close();
    }
  }

  it('sends the calls of one tick as one script call, leaving what SET + RPUSH per call leave', async () => {
    const api = newApi();
    const other = newApi();
    const rpc = createRedisRpcTransport({ url: redis.url }, newContext('p1'));
    try {
      // Two queues, in three runs: 15 calls to one, 10 to the other, 15 to the first again.
      const calls = range(40).map((n) => call(n >= 15 && n < 25 ? other : api, n));
      const before = await commandCalls(redis.admin);
      await Promise.all(calls.map((m) => rpc.call(m, { timeoutMs: 4500 })));
      const after = await commandCalls(redis.admin);
      expect(scriptCalls(before, after)).toBeGreaterThanOrEqual(1);
      expect(scriptCalls(before, after)).toBeLessThanOrEqual(2); // EVALSHA, and EVAL where the server lacked it
      expect((after['rpush'] ?? 0) - (before['rpush'] ?? 0)).toBe(3); // one per run of calls to one queue
      expect((after['set'] ?? 0) - (before['set'] ?? 0)).toBe(40);
      // In order, byte for byte; every expiry key with the call's TTL (4.5 s rounds up to 5).
      expect(await redis.admin.lrange(rpcQueueKey(api), 0, -1)).toEqual(calls.filter((m) => m.apiName === api).map((m) => encodeCall(m)));
      expect(await redis.admin.lrange(rpcQueueKey(other), 0, -1)).toEqual(calls.filter((m) => m.apiName === other).map((m) => encodeCall(m)));
      for (const m of calls) {
        expect(await redis.admin.get(rpcExpiryKey(m.id))).toBe('1');
        expect(await redis.admin.ttl(rpcExpiryKey(m.id))).toBeGreaterThan(3);
        expect(await redis.admin.ttl(rpcExpiryKey(m.id))).toBeLessThanOrEqual(5);
      }
      // A lone call goes as the plain commands.
      const lone = await commandCalls(redis.admin);
      await rpc.call(call(api, 99), { timeoutMs: 4500 });
      expect(scriptCalls(lone, await commandCalls(redis.admin))).toBe(0);
    } finally {
      await rpc.close();
    }
  });

  it('sends the results of one tick as one script call, each list holding its blob with the result TTL', async () => {
    const api = newApi();
    const results = createRedisResultTransport({ url: redis.url, result_ttl: 45 }, newContext('p1'));
    try {
      const sent = range(30).map((n) => ({ key: `${api}.echo:result:${randomUUID()}`, result: { id: randomUUID(), rpcMessageId: `c-${n}`, error: false, result: n } }));
      const before = await commandCalls(redis.admin);
      await Promise.all(sent.map(({ key, result }) => results.send(`redis+key://${key}`, result)));
      const scripts = scriptCalls(before, await commandCalls(redis.admin));
      expect(scripts).toBeGreaterThanOrEqual(1);
      expect(scripts).toBeLessThanOrEqual(2); // EVALSHA, and EVAL where the server lacked it
      for (const { key, result } of sent) {
        expect(await redis.admin.lrange(key, 0, -1)).toEqual([encodeResult(result)]);
        expect(await redis.admin.ttl(key)).toBeGreaterThan(40);
      }
    } finally {
      await results.close();
    }
  });

  it('takes and claims a burst in one script call: runs each live call once, drops expired and malformed ones', async () => {
    const api = newApi();
    const lines: string[] = [];
    const rpc = createRedisRpcTransport({ url: redis.url }, { ...newContext('p1'), logger: capturingLogger(lines) });
    const live = range(20).map((n) => call(api, n));
    const expired = range(3).map((n) => call(api, 100 + n));
    // Valid JSON nested deeper than Redis's cjson reads (1000): the script cannot read its id.
    let deepValue: unknown = 'bottom';
    for (let i = 0; i < 1100; i++) deepValue = [deepValue];
    const deep = { ...call(api, 200), kwargs: { n: 200, deep: deepValue } };
    const queue = rpcQueueKey(api);
    for (const m of [...live.slice(0, 10), ...expired, deep, ...live.slice(10)]) {
      if (!expired.includes(m)) await redis.admin.set(rpcExpiryKey(m.id), '1', 'EX', 30);
      // As Python writes it: the script reads its id with cjson (ours it reads without parsing).
      await redis.admin.rpush(queue, m === deep ? pythonBlob(m) : encodeCall(m));
    }
    await redis.admin.rpush(queue, 'not json at all');
    // The same call pushed twice (its key claimed once): it runs once.
    await redis.admin.rpush(queue, encodeCall(live[3]!));
    const before = await commandCalls(redis.admin);
    const got: RpcMessage[] = [];
    const stop = new AbortController();
    const loop = (async () => {
      for await (const m of rpc.consume([api], { signal: stop.signal })) got.push(m);
    })();
    try {
      await eventually(() => got.length === 21 && lines.some((l) => l.includes('malformed')), 5000, 'the live calls and the malformed one');
      await new Promise((r) => setTimeout(r, 100)); // nothing else comes
    } finally {
      stop.abort();
      await loop;
      await rpc.close();
    }
    expect(got.map((m) => m.id).sort()).toEqual([...live, deep].map((m) => m.id).sort());
    // In queue order, but the deep one (claimed with PTTL + DEL after the script's burst: cjson
    // cannot read it).
    expect(got.filter((m) => m.id !== deep.id).map((m) => m.id)).toEqual(live.map((m) => m.id));
    expect(got.find((m) => m.id === deep.id)!.kwargs).toEqual(deep.kwargs);
    for (const m of got) expect(m.deadline! - Date.now()).toBeGreaterThan(25_000);
    expect(lines.filter((l) => l.includes('malformed'))).toHaveLength(1);
    expect(await redis.admin.llen(queue)).toBe(0);
    for (const m of [...live, deep]) expect(await redis.admin.exists(rpcExpiryKey(m.id))).toBe(0);
    // A BLPOP, then one script call (and EVAL, once) for the rest (the queue was full before the loop started).
    expect(scriptCalls(before, await commandCalls(redis.admin))).toBeLessThanOrEqual(4);
  });

  it('claims each call by its own top-level metadata id, whatever its arguments hold or whoever wrote it', async () => {
    const api = newApi();
    const rpc = createRedisRpcTransport({ url: redis.url }, newContext('p1'));
    const queue = rpcQueueKey(api);
    // Arguments that look like call metadata, naming another call's id (a decoy whose expiry key
    // must survive): at the end of our blob's arguments, and at the very end of a blob whose
    // metadata comes first (valid JSON too, though neither side writes it so).
    const decoy = call(api, 99);
    const fake = { api_name: api, id: decoy.id, procedure_name: 'echo', return_path: decoy.returnPath };
    const ours = { ...call(api, 1), kwargs: { n: 1, zzz: { metadata: fake } } };
    const metadataFirst = call(api, 2);
    const metadataFirstBlob = JSON.stringify({
      metadata: { api_name: api, id: metadataFirst.id, procedure_name: 'echo', return_path: metadataFirst.returnPath },
      kwargs: { n: 2, metadata: fake },
    });
    const python = call(api, 3);
    const escaped = { ...call(api, 4), procedureName: 'echo', returnPath: `redis+key://${api}.echo:result:"quoted"` };
    const blobs: Array<[RpcMessage, string]> = [
      [ours, encodeCall(ours)],
      [metadataFirst, metadataFirstBlob],
      [python, pythonBlob(python)],
      [escaped, encodeCall(escaped)],
    ];
    await redis.admin.set(rpcExpiryKey(decoy.id), '1', 'EX', 30);
    for (const [m, blob] of blobs) {
      await redis.admin.set(rpcExpiryKey(m.id), '1', 'EX', 30);
      await redis.admin.rpush(queue, blob);
    }
    const got: RpcMessage[] = [];
    const stop = new AbortController();
    const loop = (async () => {
      for await (const m of rpc.consume([api], { signal: stop.signal })) got.push(m);
    })();
    try {
      await eventually(() => got.length === blobs.length, 5000, 'the four calls');
      await new Promise((r) => setTimeout(r, 100)); // nothing else comes
    } finally {
      stop.abort();
      await loop;
      await rpc.close();
    }
    expect(got.map((m) => m.id)).toEqual(blobs.map(([m]) => m.id));
    for (const m of got) expect(m.deadline! - Date.now()).toBeGreaterThan(25_000);
    for (const [m] of blobs) expect(await redis.admin.exists(rpcExpiryKey(m.id))).toBe(0);
    expect(await redis.admin.exists(rpcExpiryKey(decoy.id))).toBe(1);
  });

  it('claims a burst larger than Lua can unpack at once (rpc_batch_size 9000): every call runs once', async () => {
    const api = newApi();
    const rpc = createRedisRpcTransport({ url: redis.url, rpc_batch_size: 9000 }, newContext('p1'));
    const calls = range(8500).map((n) => call(api, n));
    const fill = redis.admin.pipeline();
    for (const m of calls) fill.set(rpcExpiryKey(m.id), '1', 'EX', 30).rpush(rpcQueueKey(api), encodeCall(m));
    await fill.exec();
    const got: string[] = [];
    const stop = new AbortController();
    const loop = (async () => {
      for await (const m of rpc.consume([api], { signal: stop.signal })) got.push(m.id);
    })();
    try {
      await eventually(() => got.length === calls.length, 10_000, 'all 8,500 calls');
    } finally {
      stop.abort();
      await loop;
      await rpc.close();
    }
    expect(new Set(got).size).toBe(calls.length);
    expect(await redis.admin.llen(rpcQueueKey(api))).toBe(0);
  });

  it('a consumer that stops after one call puts back the calls it took, each with its expiry key', async () => {
    const api = newApi();
    const rpc = createRedisRpcTransport({ url: redis.url }, newContext('p1'));
    const calls = range(40).map((n) => call(api, n));
    for (const m of calls) {
      await redis.admin.set(rpcExpiryKey(m.id), '1', 'EX', 30);
      await redis.admin.rpush(rpcQueueKey(api), encodeCall(m));
    }
    const first: RpcMessage[] = [];
    try {
      const stop = new AbortController();
      for await (const m of rpc.consume([api], { signal: stop.signal })) {
        first.push(m);
        break; // the loop took a burst (up to rpc_batch_size): the rest must go back
      }
      // A second consumer gets every other call, once, in order.
      const rest: RpcMessage[] = [];
      const loop = (async () => {
        for await (const m of rpc.consume([api], { signal: stop.signal })) rest.push(m);
      })();
      await eventually(() => rest.length === 39, 5000, 'the 39 calls put back');
      await new Promise((r) => setTimeout(r, 100));
      stop.abort();
      await loop;
      expect(first.map((m) => m.id)).toEqual([calls[0]!.id]);
      expect(rest.map((m) => m.id)).toEqual(calls.slice(1).map((m) => m.id));
      for (const m of rest) expect(m.deadline! - Date.now()).toBeGreaterThan(20_000);
    } finally {
      await rpc.close();
    }
  });

  it('serves bursts on several queues from one loop, each call once', async () => {
    const apis = [newApi(), newApi()];
    const rpc = createRedisRpcTransport({ url: redis.url }, newContext('p1'));
    const got: RpcMessage[] = [];
    const stop = new AbortController();
    const loop = (async () => {
      for await (const m of rpc.consume(apis, { signal: stop.signal })) got.push(m);
    })();
    try {
      const sent: RpcMessage[] = [];
      for (let burst = 0; burst < 5; burst++) {
        const calls = range(30).map((n) => call(apis[n % 2]!, burst * 100 + n));
        sent.push(...calls);
        await Promise.all(calls.map((m) => rpc.call(m, { timeoutMs: 5000 })));
      }
      await eventually(() => got.length === sent.length, 5000, 'every call');
      await new Promise((r) => setTimeout(r, 100));
      expect(got.map((m) => m.id).sort()).toEqual(sent.map((m) => m.id).sort());
      // Per queue, in the order sent.
      for (const api of apis) expect(got.filter((m) => m.apiName === api).map((m) => m.id)).toEqual(sent.filter((m) => m.apiName === api).map((m) => m.id));
    } finally {
      stop.abort();
      await loop;
      await rpc.close();
    }
  });

  it('two workers on one queue: each call runs once, and they stop waking each other for nothing', async () => {
    const api = newApi();
    const lines: string[] = [];
    const logger: Logger = { ...capturingLogger(lines), debug: (m) => lines.push(m) };
    const caller = createRedisRpcTransport({ url: redis.url }, newContext('caller'));
    const workers = [createRedisRpcTransport({ url: redis.url }, { ...newContext('w1'), logger }), createRedisRpcTransport({ url: redis.url }, { ...newContext('w2'), logger })];
    const got: RpcMessage[][] = [[], []];
    const stop = new AbortController();
    const loops = workers.map(async (w, i) => {
      for await (const m of w.consume([api], { signal: stop.signal })) got[i]!.push(m);
    });
    try {
      const sent: RpcMessage[] = [];
      for (let burst = 0; burst < 10; burst++) {
        const calls = range(20).map((n) => call(api, burst * 100 + n));
        sent.push(...calls);
        await Promise.all(calls.map((m) => caller.call(m, { timeoutMs: 5000 })));
        await eventually(() => got[0]!.length + got[1]!.length === sent.length, 5000, `burst ${burst}`);
      }
      await new Promise((r) => setTimeout(r, 100));
      const ids = [...got[0]!, ...got[1]!].map((m) => m.id);
      expect(ids.sort()).toEqual(sent.map((m) => m.id).sort());
      // BLMOVE leaves a call in place, so both workers woke for every burst; one of them found
      // it taken each time, and after a few such wake-ups waits with BLPOP instead.
      expect(lines.filter((l) => l.includes('Other consumers read'))).not.toHaveLength(0);
    } finally {
      stop.abort();
      await Promise.all(loops);
      await Promise.all([caller.close(), ...workers.map((w) => w.close())]);
    }
  });

  it('still serves every call after the script cache was flushed (NOSCRIPT: loads them again)', async () => {
    expect(await roundTrip({ url: redis.url }, 30)).toEqual(range(30));
    await redis.admin.script('FLUSH');
    expect(await roundTrip({ url: redis.url }, 30)).toEqual(range(30));
  });

  it('serves every call with plain commands when Redis refuses scripts to this user, saying so once per kind', async () => {
    const user = `noscripts_${randomUUID().slice(0, 8)}`;
    await redis.admin.call('ACL', 'SETUSER', user, 'on', '>pw-for-tests', '~*', '&*', '+@all', '-@scripting');
    const lines: string[] = [];
    try {
      const options = { url: redis.url.replace('redis://', `redis://${user}:pw-for-tests@`) };
      expect(await roundTrip(options, 40, capturingLogger(lines))).toEqual(range(40));
    } finally {
      await redis.admin.call('ACL', 'DELUSER', user);
    }
    expect(lines.filter((l) => l.includes('sending RPC calls as plain commands'))).toHaveLength(1);
    expect(lines.filter((l) => l.includes('sending RPC results as plain commands'))).toHaveLength(1);
    expect(lines.filter((l) => l.includes('reading RPC calls with LPOP'))).toHaveLength(1);
  });

  it('fails only the calls whose queue cannot take them; the others of the same tick are sent', async () => {
    const good = newApi();
    const bad = newApi();
    const rpc = createRedisRpcTransport({ url: redis.url }, newContext('p1'));
    try {
      await redis.admin.set(rpcQueueKey(bad), 'not a list');
      const outcomes = await Promise.allSettled([...range(5).map((n) => rpc.call(call(good, n), { timeoutMs: 5000 })), ...range(5).map((n) => rpc.call(call(bad, n), { timeoutMs: 5000 }))]);
      expect(outcomes.slice(0, 5).every((r) => r.status === 'fulfilled')).toBe(true);
      for (const r of outcomes.slice(5)) {
        expect(r.status).toBe('rejected');
        const error = (r as PromiseRejectedResult).reason as LightbusError;
        expect(LightbusError.isInstance(error)).toBe(true);
        expect(error.code).toBe(ErrorCodes.TRANSPORT_ERROR);
        expect(error.message).toMatch(/WRONGTYPE/);
        expect(error.message).toMatch(/sending RPC/);
      }
      expect(await redis.admin.llen(rpcQueueKey(good))).toBe(5);
    } finally {
      await rpc.close();
    }
  });
});
