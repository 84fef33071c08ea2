import { afterAll } from 'vitest';
import { describeResultTransport, describeRpcTransport } from '@lightbus/transport-test-suite';
import { NatsResultTransport } from '../src/result.js';
import { NatsRpcTransport } from '../src/rpc.js';
import { closeAdmin, isolatedOptions } from './helpers.js';

// Core NATS keeps nothing on the broker for RPCs and results: no cleanup needed beyond closing.
describeRpcTransport({ name: 'nats', create: (ctx) => new NatsRpcTransport(isolatedOptions(ctx.id), ctx) });
describeResultTransport({ name: 'nats', create: (ctx) => new NatsResultTransport(isolatedOptions(ctx.id), ctx) });
afterAll(closeAdmin);
