/**
 * The raw nats.js baseline (connected with `noAsyncTraces: true`): events as JetStream publish
 * (file storage, as the bus's default) → a durable pull consumer with explicit acks; RPC as core
 * NATS request/reply.
 */
import { AckPolicy, connect, JSONCodec, StorageType, type NatsConnection, type Subscription } from 'nats';
import type { BenchCall, BenchEvent, ClientSide, RunContext, Target, WorkerSide } from '../common.js';
import { cleanupNatsStreams } from './cleanup.js';

const eventCodec = JSONCodec<BenchEvent>();
const callCodec = JSONCodec<BenchCall>();
const resultCodec = JSONCodec<number>();

function names(ctx: RunContext) {
  return {
    stream: `lbbench_${ctx.id}_raw`,
    subject: `lbbench_${ctx.id}_raw.events`,
    rpc: `lbbench_${ctx.id}_raw.rpc`,
    durable: 'bench',
  };
}

/** The raw nats.js target. */
export const rawNatsTarget: Target = {
  id: 'nats-raw',
  transport: 'nats',
  kind: 'raw',
  worker(ctx: RunContext): WorkerSide {
    const n = names(ctx);
    let nc: NatsConnection | undefined;
    let sub: Subscription | undefined;
    let stopConsume: (() => Promise<void>) | undefined;
    let loop: Promise<void> | undefined;
    return {
      async start(onEvent) {
        nc = await connect({ servers: ctx.natsUrl, noAsyncTraces: true });
        const conn = nc;
        const jsm = await conn.jetstreamManager();
        await jsm.streams.add({ name: n.stream, subjects: [n.subject], storage: StorageType.File });
        await jsm.consumers.add(n.stream, { durable_name: n.durable, ack_policy: AckPolicy.Explicit });
        const consumer = await conn.jetstream().consumers.get(n.stream, n.durable);
        const messages = await consumer.consume({ max_messages: 1000 });
        stopConsume = async () => {
          await messages.close();
        };
        loop = (async () => {
          for await (const m of messages) {
            onEvent(eventCodec.decode(m.data));
            m.ack();
          }
        })();
        sub = conn.subscribe(n.rpc, {
          callback: (error, m) => {
            if (error) return;
            m.respond(resultCodec.encode(callCodec.decode(m.data).n));
          },
        });
        await conn.flush();
      },
      async close() {
        sub?.unsubscribe();
        await stopConsume?.();
        await Promise.allSettled([loop]);
        await nc?.close();
      },
    };
  },
  client(ctx: RunContext): ClientSide {
    const n = names(ctx);
    let nc: NatsConnection | undefined;
    return {
      async start() {
        nc = await connect({ servers: ctx.natsUrl, noAsyncTraces: true });
      },
      async fireBatch(events: BenchEvent[]) {
        const js = nc!.jetstream();
        await Promise.all(events.map((e) => js.publish(n.subject, eventCodec.encode(e))));
      },
      async call(params: BenchCall) {
        const reply = await nc!.request(n.rpc, callCodec.encode(params), { timeout: 10_000 });
        return resultCodec.decode(reply.data);
      },
      async close() {
        await nc?.close();
      },
    };
  },
  cleanup: (ctx) => cleanupNatsStreams(ctx.natsUrl, `lbbench_${ctx.id}_raw`),
};
