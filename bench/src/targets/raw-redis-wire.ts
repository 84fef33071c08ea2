/**
 * The raw ioredis client speaking Lightbus's own Redis wire format by hand, with no bus: what a
 * team that wrote the protocol itself with ioredis would get. It separates what the protocol
 * costs (seven field pairs per stream entry where the `redis-raw` baseline writes one, a
 * `MAXLEN ~` trim, an expiry key and a result TTL per call) from what the bus adds on top.
 *
 * - Events: `XADD {api}.*:stream MAXLEN ~ 100000 * id .. api_name .. event_name .. version 1
 *   :n .. :t .. :data ..` pipelined per batch; `XREADGROUP COUNT 100`, every `:param` decoded
 *   with `JSON.parse`, one `XACK` per batch.
 * - RPC: the caller pipelines `SET rpc_expiry_key:{id} 1 EX 5` + `RPUSH {api}:rpc_queue <blob>`
 *   and waits on its own result key with `BLPOP` (one connection per call in flight, as the
 *   protocol's result keys are per call); the worker runs 16 loops, each on its own connection,
 *   that `BLPOP` the queue, `DEL` the expiry key and pipeline `LPUSH` + `EXPIRE` of the result.
 *
 * No validation, no retries, no dead letters: the floor a bus speaking this protocol cannot go
 * below with this client library.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { BenchCall, BenchEvent, ClientSide, RunContext, Target, WorkerSide } from '../common.js';
import { cleanupRedisKeys } from './cleanup.js';
import { joinGroup, readStream } from './raw-redis.js';

const MAXLEN = '100000';
/** Worker loops popping calls at once (each waits on its own blocking connection). */
const RPC_LOOPS = 16;

function names(ctx: RunContext) {
  const api = `lbbench_${ctx.id}_wire.bench`;
  return { api, stream: `${api}.*:stream`, group: 'bench-wire', queue: `${api}:rpc_queue` };
}

/** The `:param` fields of an entry, JSON-decoded, as the event's parameters. */
function decodeParams(fields: string[]): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */) params[name.slice(1)] = JSON.parse(fields[i + 1]!);
  }
  return params;
}

/** The raw ioredis target speaking the Lightbus wire format. */
export const rawRedisWireTarget: Target = {
  id: 'redis-raw-wire',
  transport: 'redis',
  kind: 'raw-wire',
  worker(ctx: RunContext): WorkerSide {
    const n = names(ctx);
    const redis = new Redis(ctx.redisUrl);
    const eventsConn = new Redis(ctx.redisUrl);
    const rpcConns = Array.from({ length: RPC_LOOPS }, () => new Redis(ctx.redisUrl));
    let running = true;
    const loops: Promise<void>[] = [];
    return {
      async start(onEvent) {
        await joinGroup(redis, n.stream, n.group);
        loops.push(
          readStream({ conn: eventsConn, stream: n.stream, group: n.group, running: () => running }, (fields) => onEvent(decodeParams(fields) as unknown as BenchEvent)),
          ...rpcConns.map(async (rpcConn) => {
            while (running) {
              let popped: [string, string] | null;
              try {
                popped = await rpcConn.blpop(n.queue, 1);
              } catch (error) {
                if (!running) return;
                throw error;
              }
              if (!popped) continue;
              const call = JSON.parse(popped[1]) as { kwargs: BenchCall; metadata: { id: string; return_path: string } };
              // 1: the call has not expired; 0: its caller gave up, drop it as the protocol says.
              if ((await rpcConn.del(`rpc_expiry_key:${call.metadata.id}`)) !== 1) continue;
              const key = call.metadata.return_path.slice('redis+key://'.length);
              const blob = JSON.stringify({ kwargs: { result: call.kwargs.n }, metadata: { error: false, id: randomUUID(), rpc_message_id: call.metadata.id } });
              await rpcConn.pipeline().lpush(key, blob).expire(key, 60).exec();
            }
          }),
        );
      },
      async close() {
        running = false;
        eventsConn.disconnect();
        for (const c of rpcConns) c.disconnect();
        await Promise.allSettled(loops);
        redis.disconnect();
      },
    };
  },
  client(ctx: RunContext): ClientSide {
    const n = names(ctx);
    const redis = new Redis(ctx.redisUrl);
    // One blocking connection per call in flight: each call waits on its own result key.
    const idle: Redis[] = [];
    const all: Redis[] = [];
    return {
      async start() {
        await redis.ping();
      },
      async fireBatch(events: BenchEvent[]) {
        const pipeline = redis.pipeline();
        for (const e of events) {
          pipeline.xadd(
            n.stream, 'MAXLEN', '~', MAXLEN, '*',
            'id', randomUUID(), 'api_name', n.api, 'event_name', 'tick', 'version', '1',
            ':n', JSON.stringify(e.n), ':t', JSON.stringify(e.t), ':data', JSON.stringify(e.data),
          );
        }
        await pipeline.exec();
      },
      async call(params: BenchCall) {
        const id = randomUUID();
        const resultKey = `${n.api}.echo:result:${id}`;
        const blob = JSON.stringify({
          kwargs: params,
          metadata: { api_name: n.api, id, procedure_name: 'echo', return_path: `redis+key://${resultKey}` },
        });
        await redis.pipeline().set(`rpc_expiry_key:${id}`, '1', 'EX', 5).rpush(n.queue, blob).exec();
        let conn = idle.pop();
        if (!conn) {
          conn = new Redis(ctx.redisUrl);
          all.push(conn);
        }
        try {
          const reply = await conn.blpop(resultKey, 5);
          if (!reply) throw new Error(`no result for call ${id} within 5 s`);
          return (JSON.parse(reply[1]) as { kwargs: { result: number } }).kwargs.result;
        } finally {
          idle.push(conn);
        }
      },
      async close() {
        for (const c of all) c.disconnect();
        redis.disconnect();
      },
    };
  },
  cleanup: (ctx) => cleanupRedisKeys(ctx.redisUrl, `*lbbench_${ctx.id}_wire*`),
};
