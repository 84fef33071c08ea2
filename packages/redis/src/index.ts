/**
 * `@lightbus/redis`: the Redis transports of Lightbus for all four roles (RPC, result, event,
 * schema), speaking exactly the Python Lightbus wire format so TypeScript and Python services
 * share one Redis.
 *
 * ```ts
 * import { createBus } from '@lightbus/core';
 * import { transportPlugin } from '@lightbus/redis';
 * const redis = { redis: { url: 'redis://127.0.0.1:6379' } };
 * const bus = await createBus({
 *   config: { apis: { default: { rpc_transport: redis, result_transport: redis, event_transport: redis } }, bus: { schema: { transport: redis } } },
 *   transports: [transportPlugin],
 * });
 * ```
 *
 * @packageDocumentation
 */
import { TRANSPORT_SPECIFICATION_VERSION, type TransportPlugin } from '@lightbus/core';
import { redisOptionsSchema, type RedisTransportOptions } from './options.js';
import { createRedisRpcTransport } from './rpc.js';
import { createRedisResultTransport } from './result.js';
import { createRedisEventTransport } from './events.js';
import { createRedisSchemaTransport } from './schema.js';

export { RedisRpcTransport, createRedisRpcTransport } from './rpc.js';
export { RedisResultTransport, createRedisResultTransport } from './result.js';
export { RedisEventTransport, createRedisEventTransport } from './events.js';
export { RedisSchemaTransport, createRedisSchemaTransport } from './schema.js';
export { redisOptionsSchema, resolveOptions, type RedisTransportOptions, type ResolvedRedisOptions } from './options.js';
export { DEFAULT_URL, type CommandClient, type Command, type PipelineReply, type NodeRedisLike, type AcceptedClient } from './client.js';
export {
  RETURN_PATH_SCHEME,
  rpcQueueKey,
  rpcExpiryKey,
  resultKey,
  schemaKey,
  SCHEMAS_SET,
  streamKey,
  deadLetterKey,
  encodeCall,
  decodeCall,
  encodeResult,
  decodeResult,
  encodeEventFields,
  decodeEventFields,
  MalformedMessage,
  type DecodedEntry,
} from './wire.js';

/**
 * The `redis` transport plugin: all four roles. Core's config loader imports it when a config
 * names `{ redis: {...} }`; pass it to `createBus({ transports: [transportPlugin] })` to be explicit.
 */
export const transportPlugin: TransportPlugin<RedisTransportOptions> = {
  specificationVersion: TRANSPORT_SPECIFICATION_VERSION,
  name: 'redis',
  optionsSchema: redisOptionsSchema,
  createRpcTransport: (options, context) => createRedisRpcTransport(options, context),
  createResultTransport: (options, context) => createRedisResultTransport(options, context),
  createEventTransport: (options, context) => createRedisEventTransport(options, context),
  createSchemaTransport: (options, context) => createRedisSchemaTransport(options, context),
};

/** Alias of {@link transportPlugin}. */
export const redisTransports = transportPlugin;
