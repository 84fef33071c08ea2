/** The plugin entry point and its options schema, checked by core's config loader. No server needed. */
import { describe, expect, it } from 'vitest';
import { ErrorCodes, TRANSPORT_SPECIFICATION_VERSION, validateConfig } from '@lightbus/core';
import { redisTransports, resolveOptions, transportPlugin } from '../src/index.js';

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
