/**
 * The transports on a real Redis Cluster (3 masters started by test-infra/redis-cluster.sh on
 * free ports): the protocol's multi-key commands (BLPOP over several queues, MGET of schemas, the
 * RPC call pipeline, XREADGROUP over several streams) must work when the keys live in different
 * slots. Skipped, visibly, when redis-server is not installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { eventually, newContext, Collector } from '@lightbus/transport-test-suite';
import type { RpcMessage } from '@lightbus/core';
import { createRedisEventTransport, createRedisResultTransport, createRedisRpcTransport, createRedisSchemaTransport } from '../src/index.js';

const SCRIPT = join(import.meta.dirname, '..', '..', '..', 'test-infra', 'redis-cluster.sh');
const available = spawnSync('sh', ['-c', 'command -v redis-server && command -v redis-cli']).status === 0;
const title = available ? 'on a Redis Cluster of 3 masters' : 'on a Redis Cluster (SKIPPED: redis-server not found; apt-get install redis-server)';

describe.skipIf(!available)(title, () => {
  let dir = '';
  let url = '';
  beforeAll(() => {
    const out = execFileSync('bash', [SCRIPT, 'start'], { encoding: 'utf8', timeout: 30_000 });
    dir = /^DIR (.+)$/m.exec(out)![1]!;
    url = `redis://127.0.0.1:${/^PORTS (\d+)/m.exec(out)![1]!}`;
  }, 40_000);
  afterAll(() => {
    if (dir) execFileSync('bash', [SCRIPT, 'stop', dir], { timeout: 20_000 });
  });

  const ctx = newContext('p1');
  const [a, b] = ctx.apis;

  it('uses keys that really live in different slots', async () => {
    const node = new Redis(url);
    try {
      const slot = async (key: string) => Number(await node.call('CLUSTER', 'KEYSLOT', key));
      // 'lbtest_<id>.a' and '.b' differ in their last character: a collision is 1 in 16384.
      expect(await slot(`${a}:rpc_queue`)).not.toBe(await slot(`${b}:rpc_queue`));
      expect(await slot(`schema:${a}`)).not.toBe(await slot(`schema:${b}`));
      expect(await slot(`${a}.*:stream`)).not.toBe(await slot(`${b}.*:stream`));
    } finally {
      node.disconnect();
    }
  });

  it('serves RPCs of two APIs in different slots from one loop, with results', async () => {
    const opts = { url, cluster: true };
    const rpc = createRedisRpcTransport(opts, ctx);
    const results = createRedisResultTransport(opts, ctx);
    try {
      const got: RpcMessage[] = [];
      const c = new AbortController();
      const loop = (async () => {
        for await (const m of rpc.consume([a, b], { signal: c.signal })) {
          got.push(m);
          await results.send(m.returnPath, { id: `r-${m.id}`, rpcMessageId: m.id, error: false, result: m.apiName });
        }
      })();
      const answers = await Promise.all(
        [a, b, a, b].map(async (api, i) => {
          const pending = await results.prepare({ id: `c${i}`, apiName: api, procedureName: 'p' });
          await rpc.call({ id: `c${i}`, apiName: api, procedureName: 'p', kwargs: { i }, returnPath: pending.returnPath }, { timeoutMs: 5000 });
          return (await pending.wait({ timeoutMs: 5000 })).result;
        }),
      );
      expect(answers).toEqual([a, b, a, b]);
      expect(got).toHaveLength(4);
      c.abort();
      await loop;
    } finally {
      await rpc.close();
      await results.close();
    }
  });

  it('consumes streams of two APIs in different slots in one subscription, and loads schemas per key', async () => {
    const opts = { url, cluster: true, acknowledgement_timeout: 1 };
    const events = createRedisEventTransport(opts, ctx);
    const schemas = createRedisSchemaTransport(opts, ctx);
    try {
      const collector = new Collector(events, { listenerName: 'both', events: [{ apiName: a, eventName: 'x' }, { apiName: b, eventName: 'y' }] });
      await new Promise((r) => setTimeout(r, 500));
      await events.send({ id: '1', apiName: a, eventName: 'x', version: 1, kwargs: { n: 1 } });
      await events.send({ id: '2', apiName: b, eventName: 'y', version: 1, kwargs: { n: 2 } });
      await eventually(() => collector.received.length === 2, 8000, 'both events');
      // Fired together: one script call per stream, each sent to the node owning its slot.
      await Promise.all([
        ...Array.from({ length: 20 }, (_, i) => events.send({ id: `a${i}`, apiName: a, eventName: 'x', version: 1, kwargs: { i } })),
        ...Array.from({ length: 20 }, (_, i) => events.send({ id: `b${i}`, apiName: b, eventName: 'y', version: 1, kwargs: { i } })),
      ]);
      await eventually(() => collector.received.length === 42, 8000, 'the 40 events fired together');
      await collector.stop();
      const history: string[] = [];
      for await (const h of events.history({ apiName: a })) history.push(h.message.id);
      expect(history).toEqual([...Array.from({ length: 20 }, (_, i) => `a${19 - i}`), '1']);

      await schemas.store(a, { events: {}, rpcs: {} }, 60);
      await schemas.store(b, { events: { x: { parameters: {} } }, rpcs: {} }, 60);
      const loaded = await schemas.load();
      expect(loaded[a]).toEqual({ events: {}, rpcs: {} });
      expect(loaded[b]).toEqual({ events: { x: { parameters: {} } }, rpcs: {} });
    } finally {
      await events.close();
      await schemas.close();
    }
  });
});
