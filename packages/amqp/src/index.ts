/**
 * `@lightbus/amqp`: RabbitMQ transports for Lightbus, built on amqplib.
 *
 * - {@link AmqpEventTransport}: events over a topic exchange, a quorum queue per listener group,
 *   publisher confirms, retry with delay, dead letters.
 * - {@link AmqpRpcTransport}: RPC calls over a durable queue per API, at most once, with deadlines.
 * - {@link AmqpResultTransport}: results over one exclusive reply queue per process.
 * - {@link transportPlugin} (alias {@link amqpTransports}): the plugin core loads for `{ amqp: {...} }`.
 *
 * @packageDocumentation
 */
export { AmqpEventTransport, DEAD_LETTER_HEADERS } from './events.js';
export { AmqpRpcTransport, DEADLINE_HEADER } from './rpc.js';
export { AmqpResultTransport, RETURN_PATH_SCHEME, buildReturnPath, parseReturnPath } from './results.js';
export { transportPlugin, amqpTransports } from './plugin.js';
export {
  amqpNames,
  optionsSchema,
  resolveOptions,
  routingKey,
  DEFAULT_URL,
  type AmqpNames,
  type AmqpTlsOptions,
  type AmqpTransportOptions,
  type ResolvedAmqpOptions,
  type ConnectTarget,
} from './options.js';
export { AmqpConnection, acquireConnection, type PublishOptions } from './connection.js';
export { MalformedMessage, decodeCall, decodeEvent, decodeResult, encodeCall, encodeEvent, encodeResult } from './codec.js';
