/**
 * Moleculer, the framework a TypeScript user would otherwise pick: a service in the worker with
 * an `echo` action and a `bench.tick` event handler; the client calls `broker.call` and
 * `broker.emit`. Over its Redis transporter (pub/sub, ioredis) or its NATS transporter (core
 * NATS, nats.js with `noAsyncTraces: true`). Its events are not persisted by the broker: an
 * event emitted while no handler is connected is lost, unlike the bus's.
 */
import { ServiceBroker, type BrokerOptions } from 'moleculer';
import type { BenchCall, BenchEvent, ClientSide, RunContext, Target, TransportName, WorkerSide } from '../common.js';

const SERVICE = 'bench';

function redisOptions(url: string): { host: string; port: number; db: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || 6379), db: Number(parsed.pathname.slice(1) || 0) };
}

function makeBroker(transport: TransportName, ctx: RunContext, role: string): ServiceBroker {
  const transporter: BrokerOptions['transporter'] =
    transport === 'redis'
      ? { type: 'Redis', options: redisOptions(ctx.redisUrl) }
      : // The NATS transporter hands its options to nats.js connect().
        { type: 'NATS', options: { url: ctx.natsUrl, noAsyncTraces: true } };
  return new ServiceBroker({
    namespace: `lbbench_${ctx.id}`,
    nodeID: `${role}-${ctx.id}`,
    transporter,
    logger: false,
    requestTimeout: 10_000,
  });
}

/** The Moleculer target over its `redis` or `nats` transporter. */
export function moleculerTarget(transport: 'redis' | 'nats'): Target {
  return {
    id: `${transport}-moleculer`,
    transport,
    kind: 'moleculer',
    worker(ctx: RunContext): WorkerSide {
      const broker = makeBroker(transport, ctx, 'worker');
      return {
        async start(onEvent: (event: BenchEvent) => void) {
          broker.createService({
            name: SERVICE,
            actions: { echo: (c) => (c.params as BenchCall).n },
            events: { 'bench.tick': (c) => onEvent(c.params as BenchEvent) },
          });
          await broker.start();
        },
        close: () => broker.stop(),
      };
    },
    client(ctx: RunContext): ClientSide {
      const broker = makeBroker(transport, ctx, 'client');
      return {
        async start() {
          await broker.start();
          await broker.waitForServices(SERVICE, 10_000);
        },
        async fireBatch(events: BenchEvent[]) {
          await Promise.all(events.map((e) => broker.emit('bench.tick', e)));
        },
        call: (params: BenchCall) => broker.call<number, BenchCall>(`${SERVICE}.echo`, params),
        close: () => broker.stop(),
      };
    },
  };
}
