/** The plugin entry point and its options schema, checked by core's config loader. No server needed. */
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createClient, createCluster } from 'redis';
import { ErrorCodes, TRANSPORT_SPECIFICATION_VERSION, silentLogger, validateConfig } from '@lightbus/core';
import { createRedisSchemaTransport, decodeEventFields, encodeCall, encodeEventFields, encodeResult, redisTransports, resolveOptions, transportPlugin } from '../src/index.js';

describe('transportPlugin', () => {
  it('is the redis plugin for all four roles, also exported as redisTransports', () => {
    expect(transportPlugin.name).toBe('redis');
    expect(transportPlugin.specificationVersion).toBe(TRANSPORT_SPECIFICATION_VERSION);
    expect(redisTransports).toBe(transportPlugin);
    for (const f of ['createRpcTransport', 'createResultTransport', 'createEventTransport', 'createSchemaTransport'] as const) {
      expect(typeof transportPlugin[f]).toBe('function');
    }
  });

  it('accepts a config with the Python option names', () => {
    const redis = {
      redis: { url: 'redis://127.0.0.1:6379/0', stream_use: 'per_event', max_stream_length: null, batch_size: 50, acknowledgement_timeout: 30, consumer_ttl: 3600, result_ttl: 10, rpc_timeout: 3 },
    };
    expect(() => validateConfig({ apis: { default: { event_transport: redis, rpc_transport: redis } } }, [transportPlugin])).not.toThrow();
  });

  it('rejects unknown options and bad values with a config error', () => {
    for (const bad of [{ key_prefix: 'x' }, { stream_use: 'per_service' }, { url: 'http://x' }, { batch_size: 0 }]) {
      expect(() => validateConfig({ apis: { default: { event_transport: { redis: bad } } } }, [transportPlugin])).toThrowError(
        expect.objectContaining({ code: ErrorCodes.CONFIG_INVALID }) as Error,
      );
    }
  });

  it('applies the Python defaults', () => {
    expect(resolveOptions({})).toMatchObject({
      rpcTimeoutS: 5,
      resultTtlS: 60,
      streamUse: 'per_api',
      maxStreamLength: 100_000,
      ackTimeoutMs: 60_000,
      reclaimIntervalMs: 60_000,
      batchSize: 10,
      reclaimBatchSize: 100,
      consumerTtlMs: 30 * 24 * 3600 * 1000,
    });
    expect(resolveOptions({ max_stream_length: null }).maxStreamLength).toBeNull();
  });
});

describe('options given directly', () => {
  it('are checked when a transport is built', () => {
    expect(() => resolveOptions({ stream_use: 'per_thing' as 'per_api' })).toThrowError(/stream_use/);
    expect(() => resolveOptions({ batch_size: 0 })).toThrowError(/batch_size/);
    expect(() => resolveOptions({ acknowledgement_timeout: -1 })).toThrowError(/acknowledgement_timeout/);
  });
});

describe('clients passed in', () => {
  it('refuses clients that would change the wire: a key prefix, RESP3, a node-redis cluster, anything else', () => {
    const ctx = { serviceName: 's', processName: 'p', logger: silentLogger };
    const prefixed = new Redis({ lazyConnect: true, keyPrefix: 'app:' });
    expect(() => createRedisSchemaTransport({ client: prefixed }, ctx)).toThrowError(/keyPrefix/);
    prefixed.disconnect();
    expect(() => createRedisSchemaTransport({ client: createClient({ RESP: 3 }) }, ctx)).toThrowError(/RESP3/);
    expect(() => createRedisSchemaTransport({ client: createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:1' }] }) }, ctx)).toThrowError(/cluster/);
    expect(() => createRedisSchemaTransport({ client: { get: () => 1 } }, ctx)).toThrowError(/neither an ioredis client/);
    // A plain node-redis v5 client is accepted.
    expect(() => createRedisSchemaTransport({ client: createClient() }, ctx)).not.toThrow();
  });
});

describe('the wire codec', () => {
  it('never writes metadata a Python receiver would choke on', () => {
    expect(() => encodeEventFields({ id: '', apiName: 'a', eventName: 'e', version: 1, kwargs: {} })).toThrowError(expect.objectContaining({ code: ErrorCodes.MESSAGE_MALFORMED }) as Error);
    expect(() => encodeEventFields({ id: 'x', apiName: 'a', eventName: 'e', version: 0, kwargs: {} })).toThrowError(/version/);
    expect(() => encodeCall({ id: 'x', apiName: 'a', procedureName: 'p', returnPath: '', kwargs: {} })).toThrowError(/return_path/);
    expect(() => encodeResult({ id: 'r', rpcMessageId: '', error: false, result: 1 })).toThrowError(/rpc_message_id/);
  });

  it('round-trips an event, leaving out undefined parameters', () => {
    const fields = encodeEventFields({ id: 'x', apiName: 'a.b', eventName: 'e', version: 2, kwargs: { s: 'é', n: null, u: undefined, o: { l: [1] } } });
    expect(fields).toEqual(['id', 'x', 'api_name', 'a.b', 'event_name', 'e', 'version', '2', ':s', '"é"', ':n', 'null', ':o', '{"l":[1]}']);
    expect(decodeEventFields(fields)).toEqual({ kind: 'event', message: { id: 'x', apiName: 'a.b', eventName: 'e', version: 2, kwargs: { s: 'é', n: null, o: { l: [1] } } } });
    expect(decodeEventFields(['', ''])).toEqual({ kind: 'noop' });
  });
});
