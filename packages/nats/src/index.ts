/**
 * `@lightbus/nats`: Lightbus transports over NATS.
 *
 * - RPC over core NATS subjects with one queue group per API ({@link NatsRpcTransport}).
 * - Results over reply inboxes ({@link NatsResultTransport}).
 * - Events over JetStream, one stream per API, a durable pull consumer per listener group
 *   ({@link NatsEventTransport}).
 * - Schemas in a JetStream key-value bucket ({@link NatsSchemaTransport}).
 *
 * Core loads this package by itself when a config says `{ nats: {...} }`; or pass
 * {@link natsTransports} to `createBus({ transports: [...] })`.
 *
 * @packageDocumentation
 */
import { TRANSPORT_SPECIFICATION_VERSION, type TransportPlugin } from '@lightbus/core';
import { NatsEventTransport } from './events.js';
import { natsOptionsSchema, type NatsTransportOptions } from './options.js';
import { NatsResultTransport } from './result.js';
import { NatsRpcTransport } from './rpc.js';
import { NatsSchemaTransport } from './schema.js';

export { NatsRpcTransport } from './rpc.js';
export { NatsResultTransport, INBOX_SCHEME } from './result.js';
export { NatsEventTransport, DEAD_LETTER_HEADERS } from './events.js';
export { NatsSchemaTransport } from './schema.js';
export {
  natsOptionsSchema,
  resolveOptions,
  rpcSubject,
  eventSubject,
  eventWildcard,
  eventStreamName,
  deadStreamName,
  deadSubject,
  consumerName,
  schemaKey,
  apiFromSchemaKey,
  type NatsTransportOptions,
  type NatsTlsOptions,
  type ResolvedNatsOptions,
} from './options.js';
export { decodeEvent, encodeEvent, decodeRpc, encodeRpc, decodeResult, encodeResult } from './wire.js';

/** The `nats` transport plugin: all four roles. Transports built with the same options share one connection. */
export const transportPlugin: TransportPlugin<NatsTransportOptions> = {
  specificationVersion: TRANSPORT_SPECIFICATION_VERSION,
  name: 'nats',
  optionsSchema: natsOptionsSchema,
  createRpcTransport: (options, context) => new NatsRpcTransport(options, context),
  createResultTransport: (options, context) => new NatsResultTransport(options, context),
  createEventTransport: (options, context) => new NatsEventTransport(options, context),
  createSchemaTransport: (options, context) => new NatsSchemaTransport(options, context),
};

/** Alias of {@link transportPlugin}, for `createBus({ transports: [natsTransports] })`. */
export const natsTransports = transportPlugin;
