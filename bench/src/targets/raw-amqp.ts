/**
 * The raw amqplib baseline (connected with `noDelay: true`): events as persistent messages
 * published on a confirm channel to a durable quorum queue (as the bus's listener queues are),
 * consumed with prefetch and acknowledged; RPC over direct reply-to (`amq.rabbitmq.reply-to`).
 */
import amqplib, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib';
import type { BenchCall, BenchEvent, ClientSide, RunContext, Target, WorkerSide } from '../common.js';
import { cleanupAmqpPrefix } from './cleanup.js';

const REPLY_TO = 'amq.rabbitmq.reply-to';

function names(ctx: RunContext) {
  return { events: `lbbench_${ctx.id}_raw.events`, rpc: `lbbench_${ctx.id}_raw.rpc` };
}

/** Connects with Nagle's algorithm off. */
function connect(url: string): Promise<ChannelModel> {
  return amqplib.connect(url, { noDelay: true });
}

/** The raw amqplib target. */
export const rawAmqpTarget: Target = {
  id: 'amqp-raw',
  transport: 'amqp',
  kind: 'raw',
  worker(ctx: RunContext): WorkerSide {
    const n = names(ctx);
    let connection: ChannelModel | undefined;
    return {
      async start(onEvent) {
        connection = await connect(ctx.amqpUrl);
        const events = await connection.createChannel();
        await events.assertQueue(n.events, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
        await events.prefetch(500);
        await events.consume(n.events, (m) => {
          if (!m) return;
          onEvent(JSON.parse(m.content.toString()) as BenchEvent);
          events.ack(m);
        });
        const rpc = await connection.createChannel();
        await rpc.assertQueue(n.rpc, { durable: true });
        await rpc.prefetch(100);
        await rpc.consume(n.rpc, (m) => {
          if (!m) return;
          const params = JSON.parse(m.content.toString()) as BenchCall;
          rpc.sendToQueue(m.properties.replyTo as string, Buffer.from(JSON.stringify(params.n)), {
            correlationId: m.properties.correlationId as string,
          });
          rpc.ack(m);
        });
      },
      async close() {
        await connection?.close();
      },
    };
  },
  client(ctx: RunContext): ClientSide {
    const n = names(ctx);
    let connection: ChannelModel | undefined;
    let confirm: ConfirmChannel | undefined;
    let rpc: Channel | undefined;
    const waiting = new Map<string, (result: number) => void>();
    let nextId = 0;
    return {
      async start() {
        connection = await connect(ctx.amqpUrl);
        confirm = await connection.createConfirmChannel();
        rpc = await connection.createChannel();
        await rpc.consume(
          REPLY_TO,
          (m) => {
            if (!m) return;
            const id = m.properties.correlationId as string;
            const resolve = waiting.get(id);
            waiting.delete(id);
            resolve?.(JSON.parse(m.content.toString()) as number);
          },
          { noAck: true },
        );
      },
      async fireBatch(events: BenchEvent[]) {
        const channel = confirm!;
        await Promise.all(
          events.map(
            (e) =>
              new Promise<void>((resolve, reject) => {
                channel.sendToQueue(n.events, Buffer.from(JSON.stringify(e)), { persistent: true }, (error) =>
                  error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(),
                );
              }),
          ),
        );
      },
      call(params: BenchCall) {
        const id = String(nextId++);
        return new Promise<number>((resolve) => {
          waiting.set(id, resolve);
          rpc!.sendToQueue(n.rpc, Buffer.from(JSON.stringify(params)), { replyTo: REPLY_TO, correlationId: id });
        });
      },
      async close() {
        await connection?.close();
      },
    };
  },
  cleanup: (ctx) =>
    cleanupAmqpPrefix(ctx.amqpUrl, `lbbench_${ctx.id}_raw`, { queues: [names(ctx).events, names(ctx).rpc], exchanges: [] }),
};
