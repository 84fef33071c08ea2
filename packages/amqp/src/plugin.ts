/**
 * The `amqp` transport plugin. Core imports `@lightbus/amqp` and uses {@link transportPlugin}
 * when a config names `{ amqp: {...} }` for a role.
 *
 * The schema role is not served: RabbitMQ has no key-value store, and emulating one (a
 * last-value queue read with get-and-requeue, or a stream read from its end) is racy and slow.
 * Put `bus.schema.transport` on Redis, NATS or memory.
 *
 * @module
 */
import { TRANSPORT_SPECIFICATION_VERSION, type TransportPlugin } from '@lightbus/core';
import { AmqpEventTransport } from './events.js';
import { optionsSchema, type AmqpTransportOptions } from './options.js';
import { AmqpResultTransport } from './results.js';
import { AmqpRpcTransport } from './rpc.js';

/** The `amqp` plugin: RPC, result and event roles over RabbitMQ (no schema role). */
export const transportPlugin: TransportPlugin<AmqpTransportOptions> = {
  specificationVersion: TRANSPORT_SPECIFICATION_VERSION,
  name: 'amqp',
  optionsSchema,
  createRpcTransport: (options, context) => new AmqpRpcTransport(options, context),
  createResultTransport: (options, context) => new AmqpResultTransport(options, context),
  createEventTransport: (options, context) => new AmqpEventTransport(options, context),
};

/** Alias of {@link transportPlugin}, for `createBus({ transports: [amqpTransports] })`. */
export const amqpTransports = transportPlugin;
