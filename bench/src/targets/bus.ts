/**
 * Lightbus itself: core's createBus with one transport configured for every role (the schema
 * transport stays in memory: each process knows the API from its own definition).
 */
import { createBus, defineApi, event, rpc, Type, type Bus, type TransportPlugin } from '@lightbus/core';
import type { BenchEvent, ClientSide, RunContext, Target, TransportName, WorkerSide } from '../common.js';
import { cleanupAmqpPrefix, cleanupNatsStreams, cleanupRedisKeys } from './cleanup.js';

/** Events a bus listener reads per batch. */
export const BUS_LISTENER_BATCH = 100;
/** RPCs a bus worker serves at once (above the 50 in flight of rpc-concurrent). */
export const BUS_RPC_CONCURRENCY = 64;

/** The API of a run; its name carries the run id so that every broker name is unique. */
function benchApi(ctx: RunContext) {
  return defineApi({
    name: `lbbench_${ctx.id}.bench`,
    events: {
      tick: event({ parameters: { n: Type.Number(), t: Type.Number(), data: Type.String() } }),
    },
    rpcs: {
      echo: rpc({ parameters: { n: Type.Number(), data: Type.String() }, response: Type.Number() }),
    },
  });
}

function transportConfig(transport: TransportName, ctx: RunContext): Record<string, Record<string, unknown>> {
  switch (transport) {
    case 'memory':
      return { memory: { broker: `lbbench_${ctx.id}` } };
    case 'redis':
      return { redis: { url: ctx.redisUrl } };
    case 'nats':
      return { nats: { servers: ctx.natsUrl, subject_prefix: `lbbench_${ctx.id}`, stream_prefix: `lbbench_${ctx.id}` } };
    case 'amqp':
      return { amqp: { url: ctx.amqpUrl, queue_prefix: `lbbench_${ctx.id}` } };
  }
}

/** The transport's plugin, imported only when used. */
async function loadPlugins(transport: TransportName): Promise<TransportPlugin<never>[]> {
  switch (transport) {
    case 'memory':
      return [];
    case 'redis':
      return [(await import('@lightbus/redis')).transportPlugin];
    case 'nats':
      return [(await import('@lightbus/nats')).transportPlugin];
    case 'amqp':
      return [(await import('@lightbus/amqp')).transportPlugin];
  }
}

function makeBus(transport: TransportName, plugins: TransportPlugin<never>[], ctx: RunContext, role: string) {
  const api = benchApi(ctx);
  const t = transportConfig(transport, ctx);
  const bus: Bus = createBus({
    apis: [api],
    config: {
      service_name: `lbbench_${ctx.id}_${role}`,
      apis: {
        default: {
          rpc_transport: t,
          result_transport: t,
          event_transport: t,
          rpc_concurrency: BUS_RPC_CONCURRENCY,
        },
      },
    },
    transports: plugins,
  });
  // Both sides own the API: the client to fire its events, the worker to serve its RPC.
  const client = bus.registerApi(api, { echo: ({ n }) => n });
  return { bus, client };
}

/** The Lightbus target over `transport`. */
export async function busTarget(transport: TransportName): Promise<Target> {
  const plugins = await loadPlugins(transport);
  return {
    id: `${transport}-bus`,
    transport,
    kind: 'bus',
    inProcess: transport === 'memory',
    worker(ctx: RunContext): WorkerSide {
      const { bus, client } = makeBus(transport, plugins, ctx, 'worker');
      return {
        async start(onEvent: (event: BenchEvent) => void) {
          client.tick.listen((params) => onEvent(params), {
            listenerName: 'bench',
            concurrency: ctx.busListenerConcurrency,
            batchSize: BUS_LISTENER_BATCH,
          });
          await bus.start();
        },
        close: () => bus.close({ timeoutMs: 5000 }),
      };
    },
    client(ctx: RunContext): ClientSide {
      const { bus, client } = makeBus(transport, plugins, ctx, 'client');
      return {
        async start() {
          // Connect before the clock starts: one call warms every role's connection.
          await client.echo({ n: -1, data: '' });
        },
        async fireBatch(events: BenchEvent[]) {
          await Promise.all(events.map((e) => client.tick.fire(e)));
        },
        call: (params) => client.echo(params),
        close: () => bus.close({ timeoutMs: 5000 }),
      };
    },
    async cleanup(ctx: RunContext) {
      if (transport === 'redis') await cleanupRedisKeys(ctx.redisUrl, `*lbbench_${ctx.id}*`);
      if (transport === 'nats') await cleanupNatsStreams(ctx.natsUrl, `lbbench_${ctx.id}`);
      if (transport === 'amqp') {
        await cleanupAmqpPrefix(ctx.amqpUrl, `lbbench_${ctx.id}`, {
          queues: [
            `lbbench_${ctx.id}.dead`,
            `lbbench_${ctx.id}.events.lbbench_${ctx.id}_worker-bench`,
            `lbbench_${ctx.id}.rpc.lbbench_${ctx.id}.bench`,
          ],
          exchanges: [`lbbench_${ctx.id}.events`, `lbbench_${ctx.id}.dead`],
        });
      }
    },
  };
}
