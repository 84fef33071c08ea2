/**
 * The transports the chaos scenarios run against, each with a private broker the scenario may
 * kill, pause and restart.
 *
 * @module
 */
import { createRabbitVhost, startNats, startRedis, type NatsInstance, type RabbitVhost, type RedisInstance } from '@lightbus/test-infra';

/** Transport plugin names the worker knows. */
export type TransportName = 'redis' | 'nats' | 'amqp';

/** A private broker started for one scenario. */
export interface Broker {
  /** The transport it serves. */
  readonly transport: TransportName;
  /**
   * Transport options to reach it. `fast` shortens the acknowledgement timeout so another
   * worker takes over abandoned events within a test.
   */
  options(tuning?: 'fast' | 'default'): Record<string, unknown>;
  /** SIGKILL. */
  kill(): Promise<void>;
  /** Start again with the same port and data. */
  restart(): Promise<void>;
  /** SIGSTOP. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** Stop and delete its data. */
  stop(): Promise<void>;
  /** Redis only: the private instance, for checks that read the broker directly. */
  readonly redis?: RedisInstance;
  /** NATS only: the private instance. */
  readonly nats?: NatsInstance;
  /** RabbitMQ only: the private vhost on the shared server. */
  readonly rabbit?: RabbitVhost;
}

/** How to start a broker for a transport. */
export interface ChaosTarget {
  /** The transport's name (the table's title). */
  readonly name: TransportName;
  /** Starts a private broker; `persistent`: data survives a SIGKILL of the server. */
  startBroker(options: { persistent: boolean }): Promise<Broker>;
  /**
   * False when the broker is shared and must not be killed, paused or restarted (RabbitMQ: the
   * scenarios get a private vhost on the shared server instead); the broker scenarios skip it.
   */
  readonly privateServer: boolean;
}

/** Redis (`@lightbus/redis`): appendonly for persistence. */
export const redisTarget: ChaosTarget = {
  name: 'redis',
  privateServer: true,
  async startBroker({ persistent }) {
    const redis = await startRedis({ appendonly: persistent });
    return {
      transport: 'redis',
      redis,
      options: (tuning = 'default') =>
        tuning === 'fast'
          ? { url: redis.url, acknowledgement_timeout: 1.5, reclaim_interval: 0.5, block_timeout_ms: 250 }
          : { url: redis.url, block_timeout_ms: 250 },
      kill: () => redis.kill(),
      restart: () => redis.restart(),
      pause: () => redis.pause(),
      resume: () => redis.resume(),
      stop: () => redis.stop(),
    };
  },
};

/** NATS (`@lightbus/nats`): JetStream file storage for persistence, memory storage otherwise. */
export const natsTarget: ChaosTarget = {
  name: 'nats',
  privateServer: true,
  async startBroker({ persistent }) {
    const nats = await startNats({ jetstream: true });
    const base = { servers: nats.url, storage: persistent ? 'file' : 'memory' };
    return {
      transport: 'nats',
      nats,
      options: (tuning = 'default') => (tuning === 'fast' ? { ...base, acknowledgement_timeout: 1.5 } : base),
      kill: () => nats.kill(),
      restart: () => nats.restart(),
      pause: () => nats.pause(),
      resume: () => nats.resume(),
      stop: () => nats.stop(),
    };
  },
};

const shared = (what: string) => (): never => {
  throw new Error(`RabbitMQ is shared: a scenario may not ${what} it.`);
};

/** RabbitMQ (`@lightbus/amqp`): a private vhost and user on the shared server (never restarted). */
export const amqpTarget: ChaosTarget = {
  name: 'amqp',
  privateServer: false,
  async startBroker() {
    const rabbit = await createRabbitVhost();
    return {
      transport: 'amqp',
      rabbit,
      options: (tuning = 'default') => (tuning === 'fast' ? { url: rabbit.url, acknowledgement_timeout: 1.5 } : { url: rabbit.url }),
      kill: async () => shared('kill')(),
      restart: async () => shared('restart')(),
      pause: shared('pause'),
      resume: () => undefined,
      stop: () => rabbit.delete(),
    };
  },
};

/** Every target, in table order. */
export const chaosTargets: readonly ChaosTarget[] = [redisTarget, natsTarget, amqpTarget];

/**
 * The targets to run: `LIGHTBUS_CHAOS_TRANSPORTS=redis,nats` (default: all of them).
 */
export function selectedTargets(): readonly ChaosTarget[] {
  const wanted = process.env['LIGHTBUS_CHAOS_TRANSPORTS']?.split(',').map((s) => s.trim()).filter(Boolean);
  return wanted && wanted.length > 0 ? chaosTargets.filter((t) => wanted.includes(t.name)) : chaosTargets;
}
