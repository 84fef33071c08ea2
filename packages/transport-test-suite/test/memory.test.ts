import { getMemoryBroker, MemoryEventTransport, MemoryResultTransport, MemoryRpcTransport, MemorySchemaTransport, deleteMemoryBroker } from '@lightbus/core';
import { describeEventTransport, describeResultTransport, describeRpcTransport, describeSchemaTransport } from '../src/index.js';

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
