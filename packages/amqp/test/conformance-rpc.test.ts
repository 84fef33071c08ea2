import { afterAll } from 'vitest';
import { describeResultTransport, describeRpcTransport } from '@lightbus/transport-test-suite';
import { AmqpResultTransport, AmqpRpcTransport } from '../src/index.js';
import { Backdoor, testPrefix } from './helpers.js';

// The RPC and result conformance suites against the real RabbitMQ. Each test's API queues
// ({prefix}.rpc.{api}) are deleted after it; reply queues are exclusive and go with their connection.
const backdoor = new Backdoor(testPrefix());
afterAll(() => backdoor.dispose());

describeRpcTransport({
  name: 'amqp',
  create: (ctx) => new AmqpRpcTransport(backdoor.options(), ctx),
  cleanup: (ctx) => backdoor.deleteQueues(ctx.apis.map((api) => backdoor.names.rpcQueue(api))),
});

describeResultTransport({
  name: 'amqp',
  create: (ctx) => new AmqpResultTransport(backdoor.options(), ctx),
});
