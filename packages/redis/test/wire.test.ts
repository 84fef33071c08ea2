/**
 * Wire compatibility with Python Lightbus, in both directions, against the recorded traffic in
 * fixtures/ (decoded MONITOR output). Recorded API names are replaced with this test's own names
 * (and nothing else), so the JSON bytes Python wrote (sorted keys, `", "` separators, `\u00e9`
 * escapes) reach our decoders as they were.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { newContext, eventually } from '@lightbus/transport-test-suite';
import type { ReceivedEvent, RpcMessage } from '@lightbus/core';
import {
  createRedisEventTransport,
  createRedisResultTransport,
  createRedisRpcTransport,
  createRedisSchemaTransport,
  type RedisEventTransport,
} from '../src/index.js';
import { REDIS_URL, cleanupKeys, fieldMap, openMonitor, rawRedis, xrange } from './helpers.js';

type Row = [number, number, string, string, ...string[]];

const FIXTURES = join(import.meta.dirname, 'fixtures');
const traces: Record<string, Row[]> = {};
for (const file of readdirSync(FIXTURES).filter((f) => f.endsWith('.jsonl'))) {
  traces[file.replace('.jsonl', '')] = readFileSync(join(FIXTURES, file), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Row);
}

/** The argument arrays (command name first) of every recorded command `name`. */
function recorded(name: string, trace?: string): string[][] {
  const rows = trace ? traces[trace]! : Object.values(traces).flat();
  return rows.filter((r) => r[3] === name && r[2] !== 'lua').map((r) => r.slice(3) as string[]);
}

const PY_API = 'my_company.auth';
const ids: string[] = [];
function testApi(): string {
  const id = randomBytes(5).toString('hex');
  ids.push(id);
  return `lbwire_${id}.auth`;
}
const swap = (text: string, api: string) => text.split(PY_API).join(api);

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  for (const id of ids.splice(0)) await cleanupKeys(id);
});
afterAll(async () => {
  await rawRedis().quit();
});

function context() {
  const ctx = newContext('tsproc1');
  return { ...ctx, serviceName: 'ts_service' };
}

/**
 * Records the commands Redis sees that mention `marker`, while `work` runs. ECHO fences make it
 * exact: recording starts once the monitor saw the first fence, and ends once it saw the second
 * (MONITOR reports commands in the order Redis ran them).
 */
async function monitor(marker: string | string[], work: () => Promise<void>): Promise<string[][]> {
  const markers = Array.isArray(marker) ? marker : [marker];
  const fence = `fence-${randomBytes(4).toString('hex')}`;
  const seen: string[][] = [];
  const fences: string[] = [];
  const watcher = await openMonitor((a) => {
    if (a[0]?.toUpperCase() === 'ECHO' && a[1]?.startsWith(fence)) fences.push(a[1]);
    else if (fences.length === 1 && a.some((x) => markers.some((m) => x.includes(m)))) seen.push(a);
  });
  try {
    await rawRedis().echo(`${fence}-start`);
    await eventually(() => fences.length === 1, 3000, 'the monitor to start');
    await work();
    await new Promise((r) => setTimeout(r, 20));
    await rawRedis().echo(`${fence}-end`);
    await eventually(() => fences.length === 2, 3000, 'the monitor to catch up');
  } finally {
    watcher.close();
  }
  return seen;
}

describe('reading what Python wrote', () => {
  it('decodes every recorded RPC call blob', async () => {
    const rpc = createRedisRpcTransport({ url: REDIS_URL }, context());
    closers.push(() => rpc.close());
    const blobs = recorded('RPUSH');
    expect(blobs.length).toBeGreaterThanOrEqual(5);
    const api = testApi();
    const r = rawRedis();
    const expected: RpcMessage[] = [];
    for (const [, , blob] of blobs) {
      const b = swap(blob!, api).split('nobody.home').join(api).split('ts.demo').join(api);
      const parsed = JSON.parse(b) as { kwargs: Record<string, unknown>; metadata: Record<string, string> };
      await r.set(`rpc_expiry_key:${parsed.metadata['id']}`, '1', 'EX', 5);
      await r.rpush(`${api}:rpc_queue`, b);
      expected.push({
        id: parsed.metadata['id']!,
        apiName: api,
        procedureName: parsed.metadata['procedure_name']!,
        returnPath: parsed.metadata['return_path']!,
        kwargs: parsed.kwargs,
      });
    }
    const got: RpcMessage[] = [];
    const c = new AbortController();
    const loop = (async () => {
      for await (const m of rpc.consume([api], { signal: c.signal })) got.push(m);
    })();
    await eventually(() => got.length === expected.length, 5000, 'every recorded call');
    c.abort();
    await loop;
    expect(got.map(({ deadline: _d, ...m }) => m)).toEqual(expected);
    // the echo call: nested values and \u00e9 escapes
    expect(got.find((m) => m.procedureName === 'echo')!.kwargs).toEqual({ value: { f: 1.5, l: [true, null], n: 1, nested: { a: [] }, s: 'héllo "q"' } });
    for (const m of got) expect(m.deadline).toBeGreaterThan(Date.now());
    // Every expiry key was consumed by our DEL.
    for (const m of expected) expect(await r.exists(`rpc_expiry_key:${m.id}`)).toBe(0);
  });

  it('drops a recorded call whose expiry key is gone, silently', async () => {
    const rpc = createRedisRpcTransport({ url: REDIS_URL }, context());
    closers.push(() => rpc.close());
    const api = testApi();
    const [, , blob] = recorded('RPUSH', 'py-py-02-rpc-check-password')[0]!;
    await rawRedis().rpush(`${api}:rpc_queue`, swap(blob!, api)); // no expiry key: expired
    const fresh = JSON.parse(swap(blob!, api).split('5a35af62').join('fresh000')) as { metadata: { id: string } };
    await rawRedis().set(`rpc_expiry_key:${fresh.metadata.id}`, '1', 'EX', 5);
    await rawRedis().rpush(`${api}:rpc_queue`, JSON.stringify(fresh));
    const got: RpcMessage[] = [];
    const c = new AbortController();
    const loop = (async () => {
      for await (const m of rpc.consume([api], { signal: c.signal })) got.push(m);
    })();
    await eventually(() => got.length === 1, 5000, 'the fresh call');
    c.abort();
    await loop;
    expect(got.map((m) => m.id)).toEqual([fresh.metadata.id]);
    expect(await rawRedis().llen(`${api}:rpc_queue`)).toBe(0);
  });

  it('decodes every recorded result blob (success, nested, error with trace, foreign)', async () => {
    const results = createRedisResultTransport({ url: REDIS_URL }, context());
    closers.push(() => results.close());
    const pushes = recorded('LPUSH');
    expect(pushes.length).toBeGreaterThanOrEqual(5);
    const api = testApi();
    for (const [, key, blob] of pushes) {
      const m = /^(.*)\.([^.:]+):result:(.+)$/.exec(key!)!;
      const procedureName = m[2]!;
      const rpcId = m[3]!;
      const pending = await results.prepare({ id: rpcId, apiName: api, procedureName });
      expect(pending.returnPath).toBe(`redis+key://${api}.${procedureName}:result:${rpcId}`);
      await rawRedis().lpush(pending.returnPath.slice('redis+key://'.length), blob!);
      const result = await pending.wait({ timeoutMs: 2000 });
      const parsed = JSON.parse(blob!) as { kwargs: { result: unknown }; metadata: Record<string, unknown> };
      expect(result.id).toBe(parsed.metadata['id']);
      expect(result.rpcMessageId).toBe(rpcId);
      expect(result.error).toBe(parsed.metadata['error']);
      expect(result.result).toEqual(parsed.kwargs.result);
      if (parsed.metadata['error'] === true) {
        expect(result.result).toBe("ValueError('boom')");
        expect(result.trace).toContain('ValueError: boom');
      } else expect(result.trace).toBeUndefined();
      await pending.cancel();
    }
  });

  it('decodes every recorded event entry, tolerating the no-op entry and unknown fields', async () => {
    const events = createRedisEventTransport({ url: REDIS_URL }, context());
    closers.push(() => events.close());
    const api = testApi();
    const stream = `${api}.*:stream`;
    const adds = recorded('XADD');
    expect(adds.filter((a) => a.length > 6).length).toBeGreaterThanOrEqual(3);
    for (const add of adds) await rawRedis().call('XADD', ...add.slice(1).map((a) => swap(a, api)));
    // A field Python does not know: a reader must tolerate it.
    await rawRedis().xadd(stream, '*', 'id', 'x1', 'api_name', api, 'event_name', 'user_registered', 'version', '1', 'future_field', 'v', ':username', '"zed"');
    const got = await collect(events, { listenerName: 'ts_listener', events: [{ apiName: api, eventName: 'user_registered' }], since: 'all' }, 4);
    const expected = adds
      .filter((a) => a.length > 6)
      .map((a) => {
        const f = fieldMap(a.slice(a.indexOf('*') + 1).map((x) => swap(x, api)));
        return { id: f['id'], apiName: api, eventName: 'user_registered', version: 1, kwargs: { username: JSON.parse(f[':username']!) as string, email: JSON.parse(f[':email']!) as string } };
      });
    expect(got.map((e) => e.message)).toEqual([...expected, { id: 'x1', apiName: api, eventName: 'user_registered', version: 1, kwargs: { username: 'zed' } }]);
    expect(got.every((e) => e.deliveryCount === 1)).toBe(true);
    const info = (await rawRedis().call('XPENDING', stream, 'ts_service-ts_listener')) as [number];
    expect(Number(info[0])).toBe(0); // everything (no-op included) acknowledged
  });

  it('loads every recorded schema value', async () => {
    const schemas = createRedisSchemaTransport({ url: REDIS_URL }, context());
    closers.push(() => schemas.close());
    const api = testApi();
    const sets = recorded('SET', 'py-py-01-worker-start').filter((s) => s[1]!.startsWith('schema:'));
    const byName = new Map(sets.map((s) => [s[1]!.slice('schema:'.length), s[2]!]));
    expect(byName.size).toBe(3);
    const names: Record<string, string> = {};
    for (const [name, value] of byName) {
      const mine = `${api}.${name.replace(/\./g, '_')}`;
      names[mine] = value;
      await rawRedis().set(`schema:${mine}`, value, 'EX', 60);
      await rawRedis().sadd('schemas', mine);
    }
    await rawRedis().sadd('schemas', `${api}.expired`); // listed, but its key is gone
    const loaded = await schemas.load();
    for (const [mine, value] of Object.entries(names)) expect(loaded[mine]).toEqual(JSON.parse(value));
    expect(loaded[`${api}.expired`]).toBeUndefined();
  });
});

describe('writing what Python reads', () => {
  it('an RPC call: SET rpc_expiry_key EX, then RPUSH of a blob with exactly the four metadata keys', async () => {
    const rpc = createRedisRpcTransport({ url: REDIS_URL }, context());
    closers.push(() => rpc.close());
    await rpc.open();
    const api = testApi();
    const id = `ts-${randomBytes(4).toString('hex')}`;
    const returnPath = `redis+key://${api}.check_password:result:${id}`;
    const seen = await monitor([api, id], () => rpc.call({ id, apiName: api, procedureName: 'check_password', kwargs: { username: 'admin', password: 'secret' }, returnPath }, { timeoutMs: 5000 }));
    const [refSet, refPush] = [recorded('SET', 'foreign-py-A-foreign-rpc-call')[0]!, recorded('RPUSH', 'foreign-py-A-foreign-rpc-call')[0]!];
    const set = seen.find((c) => c[0]!.toUpperCase() === 'SET')!;
    const push = seen.find((c) => c[0]!.toUpperCase() === 'RPUSH')!;
    expect(seen.indexOf(set)).toBeLessThan(seen.indexOf(push));
    expect([set[0]!.toUpperCase(), ...set.slice(1)]).toEqual([refSet[0], `rpc_expiry_key:${id}`, '1', 'EX', '5']);
    expect(refSet.slice(2)).toEqual(['1', 'EX', '5']);
    expect(push[1]).toBe(swap(refPush[1]!, api));
    const ours = JSON.parse(push[2]!) as Record<string, Record<string, unknown>>;
    const ref = JSON.parse(refPush[2]!) as Record<string, Record<string, unknown>>;
    expect(Object.keys(ours).sort()).toEqual(Object.keys(ref).sort());
    expect(Object.keys(ours['metadata']!).sort()).toEqual(Object.keys(ref['metadata']!).sort());
    expect(ours['metadata']).toEqual({ api_name: api, id, procedure_name: 'check_password', return_path: `redis+key://${api}.check_password:result:${id}` });
    expect(ours['kwargs']).toEqual(ref['kwargs']);
    expect(await rawRedis().ttl(`rpc_expiry_key:${id}`)).toBeGreaterThan(3);
  });

  it('an RPC result: LPUSH of the result blob, then EXPIRE 60; error results carry trace, others do not', async () => {
    const results = createRedisResultTransport({ url: REDIS_URL }, context());
    closers.push(() => results.close());
    await results.open();
    const api = testApi();
    const okRef = recorded('LPUSH', 'py-py-02-rpc-check-password')[0]!;
    const errRef = recorded('LPUSH', 'py-py-04-rpc-error')[0]!;
    const expireRef = recorded('EXPIRE', 'py-py-02-rpc-check-password').find((e) => e[1]!.includes(':result:'))!;
    for (const [ref, result] of [
      [okRef, { id: 'r-1', rpcMessageId: 'c-1', error: false, result: true }],
      [errRef, { id: 'r-2', rpcMessageId: 'c-2', error: true, result: "Error('boom')", trace: 'Error: boom\n    at here' }],
    ] as const) {
      const key = `${api}.check_password:result:${result.rpcMessageId}`;
      const seen = await monitor(key, () => results.send(`redis+key://${key}`, result));
      expect(seen.map((c) => c[0]!.toUpperCase())).toEqual(['LPUSH', 'EXPIRE']);
      expect(seen[1]).toEqual(['expire', key, expireRef[2]].map((x, i) => (i === 0 ? seen[1]![0]! : x)));
      const ours = JSON.parse(seen[0]![2]!) as { kwargs: Record<string, unknown>; metadata: Record<string, unknown> };
      const theirs = JSON.parse(ref[2]!) as { kwargs: Record<string, unknown>; metadata: Record<string, unknown> };
      expect(Object.keys(ours.metadata).sort()).toEqual(Object.keys(theirs.metadata).sort());
      expect(Object.keys(ours.kwargs)).toEqual(Object.keys(theirs.kwargs));
      expect(typeof ours.metadata['error']).toBe('boolean');
      expect(ours.metadata['error']).toBe(theirs.metadata['error']);
      expect(ours.kwargs['result']).toEqual(result.result);
      expect(await rawRedis().ttl(key)).toBeGreaterThan(50);
    }
  });

  it('an event: XADD MAXLEN ~ 100000 * with bare metadata and :param JSON fields, in the recorded order', async () => {
    const events = createRedisEventTransport({ url: REDIS_URL }, context());
    closers.push(() => events.close());
    await events.open();
    const api = testApi();
    const ref = recorded('XADD', 'py-py-05-event')[0]!;
    const seen = await monitor(api, () =>
      events.send({ id: 'ev-1', apiName: api, eventName: 'user_registered', version: 1, kwargs: { username: 'alice', email: 'alice@example.com' } }),
    );
    expect(seen).toHaveLength(1);
    const ours = seen[0]!;
    const expected = ref.map((a) => swap(a, api));
    expected[expected.indexOf('id') + 1] = 'ev-1';
    expect([ours[0]!.toUpperCase(), ...ours.slice(1)]).toEqual(expected);
    const [[, fields]] = (await xrange(`${api}.*:stream`)) as [[string, string[]]];
    expect(fields).toEqual(expected.slice(expected.indexOf('*') + 1));
  });

  it('listener start-up: EXISTS, no-op XADD, XGROUP CREATE $, XREADGROUP 0, then XREADGROUP > with COUNT', async () => {
    const events = createRedisEventTransport({ url: REDIS_URL }, context());
    closers.push(() => events.close());
    await events.open();
    const api = testApi();
    const stream = `${api}.*:stream`;
    const c = new AbortController();
    let loop: Promise<void> | undefined;
    const seen = await monitor(api, async () => {
      loop = (async () => {
        for await (const _ of events.consume({ listenerName: 'ts_listener', events: [{ apiName: api, eventName: 'user_registered' }], signal: c.signal })) void _;
      })();
      await new Promise((r) => setTimeout(r, 300));
    });
    c.abort();
    await loop;
    const names = seen.map((s) => [s[0]!.toUpperCase(), ...s.slice(1)]);
    const at = (pred: (s: string[]) => boolean) => names.findIndex(pred);
    const exists = at((s) => s[0] === 'EXISTS');
    const noop = at((s) => s[0] === 'XADD');
    const create = at((s) => s[0] === 'XGROUP' && s[1]?.toUpperCase() === 'CREATE');
    const pending = at((s) => s[0] === 'XREADGROUP' && s.at(-1) === '0');
    const fresh = at((s) => s[0] === 'XREADGROUP' && s.at(-1) === '>');
    expect([exists, noop, create, pending, fresh].every((i) => i >= 0)).toBe(true);
    expect(exists < noop && noop < create && create < pending && pending < fresh).toBe(true);
    expect(names[noop]).toEqual(['XADD', stream, 'MAXLEN', '~', '100000', '*', '', '']);
    expect(names[create]).toEqual(['XGROUP', 'CREATE', stream, 'ts_service-ts_listener', '$']);
    const ref = recorded('XREADGROUP', 'py-py-01-worker-start').find((r) => r.at(-1) === '>')!;
    const ours = names[fresh]!;
    expect(ours.slice(0, 6)).toEqual(['XREADGROUP', 'GROUP', 'ts_service-ts_listener', 'tsproc1', 'COUNT', '10']);
    expect(ours.slice(0, 6).map((x, i) => (i >= 2 && i <= 3 ? '' : x))).toEqual(ref.slice(0, 6).map((x, i) => (i >= 2 && i <= 3 ? '' : x)));
    expect(ours.slice(-3)).toEqual(['STREAMS', stream, '>']);
  });

  it('a schema: SET schema:{api}, EXPIRE, SADD schemas, as recorded', async () => {
    const schemas = createRedisSchemaTransport({ url: REDIS_URL }, context());
    closers.push(() => schemas.close());
    await schemas.open();
    const api = testApi();
    const refValue = recorded('SET', 'py-py-01-worker-start').find((s) => s[1] === `schema:${PY_API}`)![2]!;
    const schema = JSON.parse(refValue) as never;
    const seen = await monitor(api, () => schemas.store(api, schema, 60));
    expect(seen.map((s) => [s[0]!.toUpperCase(), ...s.slice(1, 2)])).toEqual([
      ['SET', `schema:${api}`],
      ['EXPIRE', `schema:${api}`],
      ['SADD', 'schemas'],
    ]);
    expect(seen[1]![2]).toBe('60');
    expect(seen[2]![2]).toBe(api);
    expect(JSON.parse(seen[0]![2]!)).toEqual(JSON.parse(refValue));
    expect(await rawRedis().ttl(`schema:${api}`)).toBeGreaterThan(50);
  });
});

async function collect(
  transport: RedisEventTransport,
  sub: { listenerName: string; events: Array<{ apiName: string; eventName: string }>; since?: 'all' },
  count: number,
): Promise<ReceivedEvent[]> {
  const got: ReceivedEvent[] = [];
  const c = new AbortController();
  const loop = (async () => {
    for await (const batch of transport.consume({ ...sub, signal: c.signal })) {
      for (const e of batch) {
        got.push(e);
        await e.ack();
      }
    }
  })();
  await eventually(() => got.length >= count, 5000, `${count} events`);
  await new Promise((r) => setTimeout(r, 200));
  c.abort();
  await loop;
  return got;
}
