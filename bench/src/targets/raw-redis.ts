/**
 * The raw ioredis baseline: events as XADD pipelined → XREADGROUP COUNT 100 → one XACK per batch;
 * RPC as a list queue (LPUSH) popped by the worker with BLPOP (+ LPOP of what else is waiting),
 * results pushed to one reply list per client that the client pops with BLPOP (+ LPOP).
 */
import { Redis } from 'ioredis';
import type { BenchCall, BenchEvent, ClientSide, RunContext, Target, WorkerSide } from '../common.js';
import { cleanupRedisKeys } from './cleanup.js';

const BATCH = 100;

function names(ctx: RunContext) {
  const base = `lbbench_${ctx.id}_raw`;
  return { stream: `${base}:stream`, group: 'bench', rpcQueue: `${base}:rpc`, reply: `${base}:reply` };
}

/** Pops up to BATCH items: BLPOP for the first (1 s timeout), then LPOP count for the rest. */
async function popBatch(redis: Redis, key: string): Promise<string[]> {
  const first = await redis.blpop(key, 1);
  if (!first) return [];
  const rest = await redis.lpop(key, BATCH - 1);
  return rest ? [first[1], ...rest] : [first[1]];
}

/** Where {@link readStream} reads. */
export interface StreamReader {
  /** Reads and acknowledges (blocking reads). */
  conn: Redis;
  stream: string;
  group: string;
  /** False once the worker stops. */
  running: () => boolean;
}

/** Creates the consumer group at `$` (with the stream), or joins it when it exists. */
export async function joinGroup(admin: Redis, stream: string, group: string): Promise<void> {
  await admin.xgroup('CREATE', stream, group, '$', 'MKSTREAM').catch((error: unknown) => {
    // A second worker of the same run (the group exists already) joins it.
    if (!String(error).includes('BUSYGROUP')) throw error;
  });
}

/**
 * The read loop: `XREADGROUP COUNT 100 BLOCK 500` → `onEntry(fields)` per entry → one `XACK` per
 * batch, until `running()` turns false.
 */
export async function readStream(r: StreamReader, onEntry: (fields: string[]) => void): Promise<void> {
  while (r.running()) {
    let reply: unknown;
    try {
      reply = await r.conn.xreadgroup('GROUP', r.group, 'w', 'COUNT', BATCH, 'BLOCK', 500, 'STREAMS', r.stream, '>');
    } catch (error) {
      if (!r.running()) return;
      throw error;
    }
    if (!reply) continue;
    const entries = (reply as [string, [string, string[]][]][])[0]![1];
    const ids: string[] = [];
    for (const [id, fields] of entries) {
      ids.push(id);
      onEntry(fields);
    }
    await r.conn.xack(r.stream, r.group, ...ids);
  }
}

/** The raw ioredis target. */
export const rawRedisTarget: Target = {
  id: 'redis-raw',
  transport: 'redis',
  kind: 'raw',
  worker(ctx: RunContext): WorkerSide {
    const n = names(ctx);
    const redis = new Redis(ctx.redisUrl);
    const eventsConn = new Redis(ctx.redisUrl);
    const rpcConn = new Redis(ctx.redisUrl);
    let running = true;
    const loops: Promise<void>[] = [];
    return {
      async start(onEvent) {
        await joinGroup(redis, n.stream, n.group);
        loops.push(
          readStream({ conn: eventsConn, stream: n.stream, group: n.group, running: () => running }, (fields) => onEvent(JSON.parse(fields[1]!) as BenchEvent)),
          (async () => {
            while (running) {
              let items: string[];
              try {
                items = await popBatch(rpcConn, n.rpcQueue);
              } catch (error) {
                if (!running) return;
                throw error;
              }
              if (items.length === 0) continue;
              const pipeline = rpcConn.pipeline();
              for (const item of items) {
                const request = JSON.parse(item) as { id: number; reply: string; params: BenchCall };
                pipeline.rpush(request.reply, JSON.stringify({ id: request.id, result: request.params.n }));
              }
              await pipeline.exec();
            }
          })(),
        );
      },
      async close() {
        running = false;
        // Disconnecting ends the blocked reads at once; the loops see `running` false and return.
        eventsConn.disconnect();
        rpcConn.disconnect();
        await Promise.allSettled(loops);
        redis.disconnect();
      },
    };
  },
  client(ctx: RunContext): ClientSide {
    const n = names(ctx);
    const redis = new Redis(ctx.redisUrl);
    const replyConn = new Redis(ctx.redisUrl);
    const waiting = new Map<number, (result: number) => void>();
    let nextId = 0;
    let running = true;
    let loop: Promise<void> | undefined;
    return {
      async start() {
        await Promise.all([redis.ping(), replyConn.ping()]);
        loop = (async () => {
          while (running) {
            let items: string[];
            try {
              items = await popBatch(replyConn, n.reply);
            } catch (error) {
              if (!running) return;
              throw error;
            }
            for (const item of items) {
              const { id, result } = JSON.parse(item) as { id: number; result: number };
              const resolve = waiting.get(id);
              waiting.delete(id);
              resolve?.(result);
            }
          }
        })();
      },
      async fireBatch(events: BenchEvent[]) {
        const pipeline = redis.pipeline();
        for (const e of events) pipeline.xadd(n.stream, '*', 'event', JSON.stringify(e));
        await pipeline.exec();
      },
      call(params: BenchCall) {
        const id = nextId++;
        return new Promise<number>((resolve, reject) => {
          waiting.set(id, resolve);
          redis.rpush(n.rpcQueue, JSON.stringify({ id, reply: n.reply, params })).catch(reject);
        });
      },
      async close() {
        running = false;
        replyConn.disconnect();
        await Promise.allSettled([loop]);
        redis.disconnect();
      },
    };
  },
  cleanup: (ctx) => cleanupRedisKeys(ctx.redisUrl, `lbbench_${ctx.id}_raw*`),
};
