import { afterAll } from 'vitest';
import { describeEventTransport } from '@lightbus/transport-test-suite';
import { AmqpEventTransport } from '../src/index.js';
import { Backdoor, recording, testPrefix } from './helpers.js';

// The event conformance suite, against the real RabbitMQ, with a back door that reads the
// queues directly: a tap queue per API counts what reached the exchange, and the dead-letter
// queue is read with get-and-requeue.
const backdoor = new Backdoor(testPrefix());
const tapped = new Set<string>();
afterAll(() => backdoor.dispose());

describeEventTransport({
  name: 'amqp',
  create: async (ctx) => {
    for (const api of ctx.apis) {
      if (!tapped.has(api)) {
        tapped.add(api);
        await backdoor.tap(api);
      }
    }
    const transport = new AmqpEventTransport(backdoor.options({ acknowledgement_timeout: 1 }), ctx);
    return recording(transport, (listener) => backdoor.queues.add(backdoor.names.groupQueue(`${ctx.serviceName}-${listener}`)));
  },
  backdoor: {
    countStored: (_ctx, api) => backdoor.tapped(api),
    deadLetters: async (ctx, api, listener) =>
      (await backdoor.deadLetters())
        .filter((d) => d.listener === `${ctx.serviceName}-${listener}` && d.message?.apiName === api)
        .map((d) => ({ message: d.message!, error: d.error })),
    cleanup: async (ctx) => {
      const mine = [...backdoor.queues].filter((q) => q.includes(ctx.id));
      await backdoor.deleteQueues(mine);
    },
  },
});
