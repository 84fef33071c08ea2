/**
 * API schemas in a JetStream key-value bucket (`schema_bucket`, default `{stream_prefix}_schema`),
 * one key per API holding the schema JSON.
 *
 * JetStream key-value buckets expire values per bucket, not per key: the bucket's max age is the
 * schema TTL. A process that registers an API calls `store()` again before the TTL passes (core
 * does so every 0.8 × TTL), which writes a new revision and restarts the clock; a schema whose
 * process stopped refreshing expires with the bucket's max age. When `store()` is given another
 * TTL than the bucket has, the bucket's max age is changed to it, so the last writer's TTL wins;
 * processes sharing a bucket should use the same `schema.ttl`.
 *
 * @module
 */
import { StorageType, nanos, type KV, type NatsConnection } from 'nats';
import { describeError, type ApiSchema, type SchemaTransport, type TransportContext } from '@lightbus/core';
import { NatsTransportBase, wrapError } from './base.js';
import { apiFromSchemaKey, schemaKey, type NatsTransportOptions } from './options.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Schemas in a JetStream key-value bucket whose max age is the schema TTL. */
export class NatsSchemaTransport extends NatsTransportBase implements SchemaTransport {
  #kv: Promise<KV> | undefined;
  #ttlMs: number | undefined;

  /**
   * @param options see {@link NatsTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: NatsTransportOptions, context: TransportContext) {
    super('schema', options, context);
  }

  #bucket(ttlMs?: number): Promise<KV> {
    this.#kv ??= (async () => {
      const nc: NatsConnection = await this.connection();
      try {
        const js = nc.jetstream();
        const kv = await js.views.kv(this.resolved.schemaBucket, {
          history: 1,
          ttl: ttlMs ?? 60_000,
          storage: this.resolved.storage === 'file' ? StorageType.File : StorageType.Memory,
        });
        this.#ttlMs = (await kv.status()).ttl;
        return kv;
      } catch (error) {
        throw wrapError(`opening the schema bucket "${this.resolved.schemaBucket}"`, error, 'Is JetStream enabled on the server (nats-server -js)?');
      }
    })();
    this.#kv.catch(() => (this.#kv = undefined));
    return this.#kv;
  }

  /** Publishes (or refreshes) one API's schema; the bucket's max age becomes `ttlSeconds`. */
  async store(apiName: string, schema: ApiSchema, ttlSeconds: number): Promise<void> {
    const ttlMs = Math.max(1000, Math.round(ttlSeconds * 1000));
    const kv = await this.#bucket(ttlMs);
    if (this.#ttlMs !== ttlMs) await this.#setTtl(ttlMs);
    try {
      await kv.put(schemaKey(apiName), encoder.encode(JSON.stringify(schema)));
    } catch (error) {
      throw wrapError(`storing the schema of API ${apiName}`, error);
    }
  }

  async #setTtl(ttlMs: number): Promise<void> {
    const nc = await this.connection();
    const stream = `KV_${this.resolved.schemaBucket}`;
    try {
      const jsm = await nc.jetstreamManager();
      const info = await jsm.streams.info(stream);
      const maxAge = nanos(ttlMs);
      await jsm.streams.update(stream, { ...info.config, max_age: maxAge, duplicate_window: Math.min(info.config.duplicate_window || maxAge, maxAge) });
      this.context.logger.info(`Schema bucket ${this.resolved.schemaBucket}: time to live set to ${ttlMs / 1000} s`);
      this.#ttlMs = ttlMs;
    } catch (error) {
      throw wrapError(`setting the time to live of the schema bucket "${this.resolved.schemaBucket}"`, error);
    }
  }

  /** Every schema in the bucket that has not expired. Values that are not schema JSON are skipped with a warning. */
  async load(): Promise<Record<string, ApiSchema>> {
    const kv = await this.#bucket();
    const out: Record<string, ApiSchema> = {};
    try {
      const keys: string[] = [];
      for await (const key of await kv.keys()) keys.push(key);
      const entries = await Promise.all(keys.map((k) => kv.get(k)));
      for (const entry of entries) {
        if (!entry || entry.operation !== 'PUT') continue;
        const apiName = apiFromSchemaKey(entry.key);
        try {
          const value = JSON.parse(decoder.decode(entry.value)) as unknown;
          if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
          const { events, rpcs } = value as Record<string, unknown>;
          if (typeof events !== 'object' || events === null || typeof rpcs !== 'object' || rpcs === null) throw new Error('no "events" and "rpcs" objects');
          out[apiName] = value as ApiSchema;
        } catch (error) {
          this.context.logger.warn(`Skipped the schema of API ${apiName} in bucket ${this.resolved.schemaBucket}: it is malformed (${describeError(error)})`);
        }
      }
    } catch (error) {
      throw wrapError(`loading schemas from the bucket "${this.resolved.schemaBucket}"`, error);
    }
    return out;
  }
}
