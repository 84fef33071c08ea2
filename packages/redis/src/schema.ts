/**
 * API schemas in Redis, as Python Lightbus shares them: `schema:{api}` holds the schema JSON with
 * a TTL, and the set `schemas` lists every API name that ever published one.
 *
 * @module
 */
import type { ApiSchema, SchemaTransport, TransportContext } from '@lightbus/core';
import { checkReplies, wrapError, type Command } from './client.js';
import { RedisTransportBase } from './base.js';
import type { RedisTransportOptions } from './options.js';
import { SCHEMAS_SET, schemaKey } from './wire.js';

/** The Redis schema transport. Build it with {@link createRedisSchemaTransport}. */
export class RedisSchemaTransport extends RedisTransportBase implements SchemaTransport {
  /**
   * @param options see {@link RedisTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: RedisTransportOptions, context: TransportContext) {
    super(options, context, 'schema');
  }

  /** One pipeline: `SET schema:{api} <json>`, `EXPIRE schema:{api} <ttl>`, `SADD schemas {api}`. */
  async store(apiName: string, schema: ApiSchema, ttlSeconds: number): Promise<void> {
    this.assertOpen();
    const key = schemaKey(apiName);
    const commands: Command[] = [
      ['SET', key, JSON.stringify(schema)],
      ['EXPIRE', key, Math.max(1, Math.ceil(ttlSeconds))],
      ['SADD', SCHEMAS_SET, apiName],
    ];
    try {
      checkReplies(await this.redis.pipeline(commands), `publishing the schema of ${apiName}`);
    } catch (error) {
      throw wrapError(error, `publishing the schema of ${apiName}`);
    }
  }

  /**
   * `SMEMBERS schemas`, then one `MGET schema:{a} schema:{b} ...` (on a cluster, one GET per key,
   * pipelined per node). Names whose key expired are skipped, and so are values that are not a
   * JSON object (with a logged reason).
   */
  async load(): Promise<Record<string, ApiSchema>> {
    this.assertOpen();
    let names: string[];
    let values: Array<string | null>;
    try {
      names = ((await this.redis.send(['SMEMBERS', SCHEMAS_SET])) as string[]).slice().sort();
      if (names.length === 0) return {};
      const keys = names.map(schemaKey);
      values = this.redis.cluster
        ? (checkReplies(await this.redis.pipeline(keys.map((k) => ['GET', k] as Command)), 'loading schemas') as Array<string | null>)
        : ((await this.redis.send(['MGET', ...keys])) as Array<string | null>);
    } catch (error) {
      throw wrapError(error, 'loading schemas');
    }
    const out: Record<string, ApiSchema> = {};
    names.forEach((name, i) => {
      const value = values[i];
      if (value === null || value === undefined) return; // expired
      try {
        const parsed = JSON.parse(value) as unknown;
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
        const schema = parsed as Partial<ApiSchema>;
        Object.defineProperty(out, name, {
          value: { ...schema, events: schema.events ?? {}, rpcs: schema.rpcs ?? {} },
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } catch (error) {
        this.context.logger.warn(`Skipped the schema of ${name} stored in Redis: ${(error as Error).message}.`);
      }
    });
    return out;
  }
}

/** Builds the Redis schema transport. */
export function createRedisSchemaTransport(options: RedisTransportOptions, context: TransportContext): RedisSchemaTransport {
  return new RedisSchemaTransport(options, context);
}
