import { afterAll } from 'vitest';
import { describeEventTransport } from '@lightbus/transport-test-suite';
import { NatsEventTransport, DEAD_LETTER_HEADERS } from '../src/events.js';
import { deadStreamName, eventStreamName, resolveOptions } from '../src/options.js';
import { decodeEvent } from '../src/wire.js';
import { RUN_PREFIX, adminConnection, closeAdmin, deleteStreams, isolatedOptions, readStream } from './helpers.js';

describeEventTransport({
  name: 'nats',
  create: (ctx) => new NatsEventTransport(isolatedOptions(ctx.id), ctx),
  backdoor: {
    countStored: async (ctx, api) => {
      const jsm = await (await adminConnection()).jetstreamManager();
      const info = await jsm.streams.info(eventStreamName(resolveOptions(isolatedOptions(ctx.id)), api));
      return info.state.messages;
    },
    deadLetters: async (ctx, api, listener) => {
      const entries = await readStream(deadStreamName(resolveOptions(isolatedOptions(ctx.id)), api));
      return entries
        .filter((e) => e.headers[DEAD_LETTER_HEADERS.listener] === `${ctx.serviceName}-${listener}`)
        .map((e) => ({ message: decodeEvent(e.data), error: e.headers[DEAD_LETTER_HEADERS.error] ?? '' }));
    },
    cleanup: (ctx) => deleteStreams(`${RUN_PREFIX}_${ctx.id}_`),
  },
});
afterAll(closeAdmin);
