/**
 * Options of the Redis transports. Names are snake_case and match Python Lightbus's Redis
 * transport options where Python has them, so one config file serves services in both languages.
 *
 * @module
 */
import { ConfigurationError } from '@lightbus/core';

/** Options of every Redis transport (config key `redis`). */
export interface RedisTransportOptions {
  /** Redis URL, `redis://[user:password@]host:port[/db]` (or `rediss://`). Default `redis://127.0.0.1:6379`. */
  url?: string;
  /**
   * An existing client to use instead of `url`: an ioredis `Redis` or `Cluster`, or a node-redis
   * v5 client (`createClient()` from `redis`). The transport never closes a client it was given;
   * it duplicates it for its blocking connections (and closes those).
   */
  client?: unknown;
  /** Treat `url` as the seed node of a Redis Cluster (see the README's cluster notes). Default false. */
  cluster?: boolean;
  /**
   * Seconds an RPC call lives (the TTL of `rpc_expiry_key:{id}`) when the caller gives no
   * timeout. The bus always passes the API's `rpc_timeout`, which wins. Default 5.
   */
  rpc_timeout?: number;
  /** Seconds an unread RPC result is kept (TTL of the result list). Default 60. */
  result_ttl?: number;
  /** Stream naming: `per_api` (`{api}.*:stream`, the default) or `per_event` (`{api}.{event}:stream`). */
  stream_use?: 'per_api' | 'per_event';
  /** `MAXLEN ~` of every XADD. Default 100000; `null` turns trimming off. */
  max_stream_length?: number | null;
  /** Seconds an event may stay unacknowledged before another consumer reclaims it. Default 60. */
  acknowledgement_timeout?: number;
  /** Seconds between reclaim passes. Default: `acknowledgement_timeout`. */
  reclaim_interval?: number;
  /**
   * Calls a worker takes from a queue at once: one `BLPOP`, then `LPOP {queue} <n-1>`. Default
   * 32 (the bus's default `rpc_concurrency`); 1 reads one call per BLPOP, as Python does. Calls
   * taken wait in the worker for a free slot, so with slow procedures and several workers, keep
   * it near the worker's `rpc_concurrency`.
   */
  rpc_batch_size?: number;
  /** Pending entries examined per XPENDING page when reclaiming. Default 100 (as Python). */
  reclaim_batch_size?: number;
  /** `COUNT` of XREADGROUP: events read at once. Default 10 (a listener's `batchSize` wins). */
  batch_size?: number;
  /** Seconds after which an idle consumer is removed from its group at listener start. Default 30 days. */
  consumer_ttl?: number;
  /** Milliseconds one blocking read waits before the loop looks around. Default 1000. */
  block_timeout_ms?: number;
  /** Largest stream entry accepted, in bytes; larger ones are dead-lettered. Default 1048576 (1 MiB). */
  max_message_bytes?: number;
}

/** The options with defaults applied. */
export interface ResolvedRedisOptions {
  rpcTimeoutS: number;
  resultTtlS: number;
  streamUse: 'per_api' | 'per_event';
  maxStreamLength: number | null;
  ackTimeoutMs: number;
  reclaimIntervalMs: number;
  batchSize: number;
  reclaimBatchSize: number;
  rpcBatchSize: number;
  consumerTtlMs: number;
  blockMs: number;
  maxMessageBytes: number;
}

function positive(options: RedisTransportOptions, key: keyof RedisTransportOptions): void {
  const value = options[key];
  if (value !== undefined && value !== null && !(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
    throw new ConfigurationError(`The redis transport option "${key}" must be a positive number, not ${JSON.stringify(value)}.`);
  }
}

/** Applies the defaults; throws a {@link ConfigurationError} on a bad value. */
export function resolveOptions(options: RedisTransportOptions): ResolvedRedisOptions {
  if (options.stream_use !== undefined && options.stream_use !== 'per_api' && options.stream_use !== 'per_event') {
    throw new ConfigurationError(`The redis transport option "stream_use" must be "per_api" or "per_event", not ${JSON.stringify(options.stream_use)}.`);
  }
  for (const key of ['rpc_timeout', 'result_ttl', 'max_stream_length', 'acknowledgement_timeout', 'reclaim_interval', 'batch_size', 'reclaim_batch_size', 'rpc_batch_size', 'consumer_ttl', 'block_timeout_ms', 'max_message_bytes'] as const) {
    positive(options, key);
  }
  const ackTimeoutMs = (options.acknowledgement_timeout ?? 60) * 1000;
  return {
    rpcTimeoutS: options.rpc_timeout ?? 5,
    resultTtlS: options.result_ttl ?? 60,
    streamUse: options.stream_use ?? 'per_api',
    maxStreamLength: options.max_stream_length === undefined ? 100_000 : options.max_stream_length,
    ackTimeoutMs,
    reclaimIntervalMs: options.reclaim_interval !== undefined ? options.reclaim_interval * 1000 : ackTimeoutMs,
    batchSize: options.batch_size ?? 10,
    reclaimBatchSize: options.reclaim_batch_size ?? 100,
    rpcBatchSize: Math.floor(options.rpc_batch_size ?? 32),
    consumerTtlMs: (options.consumer_ttl ?? 30 * 24 * 3600) * 1000,
    blockMs: options.block_timeout_ms ?? 1000,
    maxMessageBytes: options.max_message_bytes ?? 1_048_576,
  };
}

/** JSON Schema of {@link RedisTransportOptions}, used to check configs. */
export const redisOptionsSchema: Record<string, unknown> = {
  type: 'object',
  additionalProperties: false,
  properties: {
    url: { type: 'string', pattern: '^rediss?://', description: 'Redis URL. Default redis://127.0.0.1:6379.' },
    client: { description: 'An existing ioredis or node-redis v5 client (object configs only).' },
    cluster: { type: 'boolean', description: 'Treat url as the seed node of a Redis Cluster.' },
    rpc_timeout: { type: 'number', exclusiveMinimum: 0, description: 'Seconds an RPC call lives when the caller gives no timeout. Default 5.' },
    result_ttl: { type: 'number', exclusiveMinimum: 0, description: 'Seconds an unread RPC result is kept. Default 60.' },
    stream_use: { enum: ['per_api', 'per_event'], description: 'One stream per API (default) or per event.' },
    max_stream_length: { type: ['integer', 'null'], minimum: 1, description: 'MAXLEN ~ of XADD. Default 100000; null: no trimming.' },
    acknowledgement_timeout: { type: 'number', exclusiveMinimum: 0, description: 'Seconds before an unacknowledged event is reclaimed. Default 60.' },
    reclaim_interval: { type: 'number', exclusiveMinimum: 0, description: 'Seconds between reclaim passes. Default: acknowledgement_timeout.' },
    batch_size: { type: 'integer', minimum: 1, description: 'COUNT of XREADGROUP. Default 10.' },
    rpc_batch_size: { type: 'integer', minimum: 1, description: 'Calls a worker takes from a queue at once. Default 32; 1 as Python.' },
    reclaim_batch_size: { type: 'integer', minimum: 1, description: 'Pending entries examined per XPENDING page when reclaiming. Default 100.' },
    consumer_ttl: { type: 'number', exclusiveMinimum: 0, description: 'Seconds before an idle consumer is removed. Default 2592000 (30 days).' },
    block_timeout_ms: { type: 'integer', minimum: 10, description: 'Milliseconds one blocking read waits. Default 1000.' },
    max_message_bytes: { type: 'integer', minimum: 1, description: 'Largest stream entry accepted, in bytes. Default 1048576.' },
  },
};
