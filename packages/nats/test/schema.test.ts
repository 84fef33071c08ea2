import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { newContext, describeSchemaTransport } from '@lightbus/transport-test-suite';
import { silentLogger, type LogFields, type Logger } from '@lightbus/core';
import { NatsSchemaTransport } from '../src/schema.js';
import { apiFromSchemaKey, schemaKey } from '../src/options.js';
import { RUN_PREFIX, adminConnection, closeAdmin, deleteStreams, isolatedOptions } from './helpers.js';

const bucketOf = (id: string) => `${RUN_PREFIX}_${id}_schema`;

describeSchemaTransport({
  name: 'nats',
  create: (ctx) => new NatsSchemaTransport(isolatedOptions(ctx.id), ctx),
  cleanup: (ctx) => deleteStreams(`KV_${bucketOf(ctx.id)}`),
});

describe('nats schema specifics', () => {
  const open: NatsSchemaTransport[] = [];
  const ids: string[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
    for (const id of ids.splice(0)) await deleteStreams(`KV_${bucketOf(id)}`);
  });
  afterAll(closeAdmin);

  function make(logger: Logger = silentLogger) {
    const ctx = { ...newContext(), logger };
    ids.push(ctx.id);
    const t = new NatsSchemaTransport(isolatedOptions(ctx.id), ctx);
    open.push(t);
    return { ctx, t };
  }

  it('maps API names to key-value keys and back, one to one', () => {
    for (const name of ['auth', 'my_company.auth', 'a.b.c_d', 'weird name/ü=x']) {
      expect(apiFromSchemaKey(schemaKey(name))).toBe(name);
      expect(schemaKey(name)).toMatch(/^[-/_=.a-zA-Z0-9]+$/);
    }
    expect(schemaKey('my_company.auth')).toBe('my_company.auth');
  });

  it('sets the bucket max age to the TTL, and store() refreshes a schema so it outlives one TTL', async () => {
    const { ctx, t } = make();
    const schema = { events: {}, rpcs: {} };
    await t.store(ctx.apis[0], schema, 2);
    const jsm = await (await adminConnection()).jetstreamManager();
    const info = await jsm.streams.info(`KV_${bucketOf(ctx.id)}`);
    expect(info.config.max_age).toBe(2_000_000_000);
    // Refresh every second for 3 seconds: still there.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      await t.store(ctx.apis[0], schema, 2);
    }
    expect(Object.keys(await t.load())).toContain(ctx.apis[0]);
  });

  it('moves the bucket max age when store() is given another TTL', async () => {
    const { ctx, t } = make();
    await t.load(); // creates the bucket with the default TTL
    await t.store(ctx.apis[0], { events: {}, rpcs: {} }, 60);
    const jsm = await (await adminConnection()).jetstreamManager();
    expect((await jsm.streams.info(`KV_${bucketOf(ctx.id)}`)).config.max_age).toBe(60_000_000_000);
    await t.store(ctx.apis[0], { events: {}, rpcs: {} }, 5);
    expect((await jsm.streams.info(`KV_${bucketOf(ctx.id)}`)).config.max_age).toBe(5_000_000_000);
    expect(Object.keys(await t.load())).toEqual([ctx.apis[0]]);
  });

  it('skips a malformed value with a logged reason', async () => {
    const lines: string[] = [];
    const rec = (m: string, f?: LogFields) => lines.push(m + (f ? JSON.stringify(f) : ''));
    const { ctx, t } = make({ debug: rec, info: rec, warn: rec, error: rec });
    await t.store(ctx.apis[0], { events: {}, rpcs: {} }, 60);
    const kv = await (await adminConnection()).jetstream().views.kv(bucketOf(ctx.id));
    await kv.put(schemaKey(ctx.apis[1]), new TextEncoder().encode('{broken'));
    const loaded = await t.load();
    expect(Object.keys(loaded)).toEqual([ctx.apis[0]]);
    expect(lines.join('\n')).toContain(`Skipped the schema of API ${ctx.apis[1]}`);
  });
});
