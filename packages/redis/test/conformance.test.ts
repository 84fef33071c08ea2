import { afterAll } from 'vitest';
import { describeEventTransport, describeResultTransport, describeRpcTransport, describeSchemaTransport, type SuiteContext } from '@lightbus/transport-test-suite';
import { createRedisEventTransport, createRedisResultTransport, createRedisRpcTransport, createRedisSchemaTransport, decodeEventFields, streamKey } from '../src/index.js';
import { REDIS_URL, cleanupKeys, deadLetters, rawRedis, xrange } from './helpers.js';

const options = { url: REDIS_URL, acknowledgement_timeout: 1 };
const cleanup = (ctx: SuiteContext) => cleanupKeys(ctx.id);

afterAll(async () => {
  await rawRedis().quit();
});

describeEventTransport({
  name: 'redis',
  create: (ctx) => createRedisEventTransport(options, ctx),
  backdoor: {
    countStored: async (_ctx, api) => (await xrange(streamKey(api, '', 'per_api'))).filter(([, f]) => decodeEventFields(f).kind === 'event').length,
    deadLetters: async (ctx, api, listener) =>
      (await deadLetters(streamKey(api, '', 'per_api')))
        .filter((d) => d['listener'] === `${ctx.serviceName}-${listener}`)
        .map((d) => {
          const decoded = decodeEventFields(Object.entries(d).flat());
          if (decoded.kind !== 'event') throw new Error(`dead letter not decodable: ${JSON.stringify(d)}`);
          return { message: decoded.message, error: d['error']! };
        }),
    cleanup,
  },
});
describeRpcTransport({ name: 'redis', create: (ctx) => createRedisRpcTransport(options, ctx), cleanup });
describeResultTransport({ name: 'redis', create: (ctx) => createRedisResultTransport(options, ctx), cleanup });
describeSchemaTransport({ name: 'redis', create: (ctx) => createRedisSchemaTransport(options, ctx), cleanup });
