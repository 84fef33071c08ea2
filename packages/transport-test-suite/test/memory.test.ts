import { getMemoryBroker, MemoryEventTransport, MemoryResultTransport, MemoryRpcTransport, MemorySchemaTransport, deleteMemoryBroker } from '@lightbus/core';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { describeEventTransport, describeResultTransport, describeRpcTransport, describeSchemaTransport, newContext } from '../src/index.js';

// The in-memory transports pass the same suite every broker transport runs.
const options = (id: string) => ({ broker: `conformance-${id}`, acknowledgement_timeout: 1 });
const cleanup = async (ctx: { id: string }) => deleteMemoryBroker(`conformance-${ctx.id}`);

describeEventTransport({
  name: 'memory',
  create: (ctx) => new MemoryEventTransport(options(ctx.id), ctx),
  backdoor: {
    countStored: async (ctx, api) => getMemoryBroker(`conformance-${ctx.id}`).streams.get(api)?.entries.length ?? 0,
    deadLetters: async (ctx, _api, listener) =>
      getMemoryBroker(`conformance-${ctx.id}`)
        .deadLetters.filter((d) => d.group === `${ctx.serviceName}-${listener}`)
        .map((d) => ({ message: d.message, error: d.error })),
    cleanup,
  },
});
describeRpcTransport({ name: 'memory', create: (ctx) => new MemoryRpcTransport(options(ctx.id)), cleanup });
describeResultTransport({ name: 'memory', create: (ctx) => new MemoryResultTransport(options(ctx.id)), cleanup });
describeSchemaTransport({ name: 'memory', create: (ctx) => new MemorySchemaTransport(options(ctx.id)), cleanup });

describe('memory event stream length', () => {
  const message = (api: string, n: number) => ({ id: `m${n}`, apiName: api, eventName: 'happened', version: 1, kwargs: { n } });

  it('keeps about max_stream_length events: trims the oldest once the stream is 1% longer', async () => {
    const broker = `trim-${randomUUID()}`;
    const events = new MemoryEventTransport({ broker, max_stream_length: 1000 }, newContext('p1'));
    try {
      for (let n = 0; n < 1009; n++) await events.send(message('trim.api', n));
      const stream = getMemoryBroker(broker).streams.get('trim.api')!;
      expect(stream.entries).toHaveLength(1009);
      await events.send(message('trim.api', 1009));
      expect(stream.entries).toHaveLength(1000);
      expect(stream.entries[0]!.message.kwargs).toEqual({ n: 10 });
      expect(stream.entries.at(-1)!.message.kwargs).toEqual({ n: 1009 });
    } finally {
      await events.close();
      deleteMemoryBroker(broker);
    }
  });

  it('delivers every event of a long stream, in order, to a listener that starts at the beginning', async () => {
    const broker = `long-${randomUUID()}`;
    const context = newContext('p1');
    const events = new MemoryEventTransport({ broker, max_stream_length: null }, context);
    const controller = new AbortController();
    try {
      const total = 30_000;
      for (let n = 0; n < total; n++) await events.send(message('long.api', n));
      const seen: number[] = [];
      for await (const batch of events.consume({ listenerName: 'l', events: [{ apiName: 'long.api', eventName: 'happened' }], signal: controller.signal, since: 'all', batchSize: 500 })) {
        for (const e of batch) {
          seen.push(e.message.kwargs['n'] as number);
          await e.ack();
        }
        if (seen.length >= total) break;
      }
      expect(seen).toEqual(Array.from({ length: total }, (_, n) => n));
    } finally {
      controller.abort();
      await events.close();
      deleteMemoryBroker(broker);
    }
  });
});
