// The mix, per role: RPC calls and their results over NATS (request/reply, no broker queue),
// events and schemas over Redis Streams, or events over RabbitMQ with EVENTS=amqp.
// Only the config changes; the services' code is the same whatever the brokers.
import type { LightbusConfig } from '@lightbus/core';

/** Where the brokers are; tests pass their own prefixes and database to stay apart. */
export interface MixOptions {
  /** `redis` (default) or `amqp`: which broker carries events. */
  events?: 'redis' | 'amqp';
  /** Redis URL (events and schemas). */
  redisUrl?: string;
  /** NATS server(s) (RPCs and results). */
  natsServers?: string;
  /** RabbitMQ URL (events with `events: 'amqp'`). */
  amqpUrl?: string;
  /** Prefix of NATS subjects/streams and RabbitMQ queues/exchanges. */
  prefix?: string;
}

/** Reads the mix from the environment (EVENTS, REDIS_URL, NATS_SERVERS, AMQP_URL, PREFIX). */
export function mixFromEnv(env: Record<string, string | undefined> = process.env): MixOptions {
  return {
    events: env['EVENTS'] === 'amqp' ? 'amqp' : 'redis',
    redisUrl: env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
    natsServers: env['NATS_SERVERS'] ?? 'nats://127.0.0.1:4222',
    amqpUrl: env['AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672',
    prefix: env['PREFIX'] ?? 'lightbus',
  };
}

/** The config of one service: same mix, its own service name. */
export function mixedConfig(serviceName: string, mix: MixOptions = mixFromEnv()): LightbusConfig {
  const redis = { redis: { url: mix.redisUrl ?? 'redis://127.0.0.1:6379' } };
  const nats = { nats: { servers: mix.natsServers ?? 'nats://127.0.0.1:4222', subject_prefix: mix.prefix ?? 'lightbus', stream_prefix: mix.prefix ?? 'lightbus' } };
  const amqp = { amqp: { url: mix.amqpUrl ?? 'amqp://guest:guest@127.0.0.1:5672', queue_prefix: mix.prefix ?? 'lightbus' } };
  return {
    service_name: serviceName,
    bus: { schema: { transport: redis } },
    apis: {
      default: {
        rpc_transport: nats,
        result_transport: nats,
        event_transport: mix.events === 'amqp' ? amqp : redis,
      },
    },
  };
}
