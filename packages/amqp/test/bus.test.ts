import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createBus, defineApi, ErrorCodes, event, rpc, silentLogger, Type, Types, type AnyApi, type Bus } from '@lightbus/core';
import { amqpTransports } from '../src/index.js';
import { Backdoor, testPrefix } from './helpers.js';

// End to end: core's createBus with amqp for the rpc, result and event roles (schema on memory),
// against the real RabbitMQ.
const backdoor = new Backdoor(testPrefix());
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => backdoor.dispose());

function apis(id: string) {
  const shop = defineApi({
    name: `lbtest_${id}.shop`,
    events: {
      orderPlaced: event({ parameters: { orderId: Type.String(), placedAt: Types.DateTime(), total: Types.BigInt() } }),
    },
    rpcs: {
      price: rpc({ parameters: { sku: Type.String(), quantity: Type.Integer() }, response: Type.Number() }),
      explode: rpc({ parameters: { message: Type.String() } }),
    },
  });
  return { shop };
}

function makeBus<const A extends readonly AnyApi[]>(list: A, id: string, processName: string, extra: Record<string, unknown> = {}): Bus<A> {
  const amqp = { amqp: { ...backdoor.options() } as Record<string, unknown> };
  const bus = createBus({
    apis: list,
    transports: [amqpTransports],
    logger: silentLogger,
    processName,
    config: {
      service_name: `svc_${id}`,
      bus: { schema: { transport: { memory: { broker: `amqp-e2e-${id}` } } } },
      apis: { default: { rpc_transport: amqp, result_transport: amqp, event_transport: amqp, rpc_timeout: 2, retry_delay: 0.05, ...extra } },
    },
  });
  cleanups.push(() => bus.close({ timeoutMs: 2000 }));
  return bus;
}

/** Waits until the listener group's queue exists and has a consumer (listeners start asynchronously). */
async function listening(group: string): Promise<void> {
  const queue = backdoor.names.groupQueue(group);
  backdoor.queues.add(queue);
  await expect
    .poll(() => backdoor.withChannel(async (ch) => (await ch.checkQueue(queue)).consumerCount).catch(() => 0), { timeout: 5000 })
    .toBeGreaterThan(0);
}

describe('amqp end to end through createBus', () => {
  it('serves typed RPCs, carries remote errors back, and times out when nobody serves', async () => {
    const id = randomBytes(4).toString('hex');
    const { shop } = apis(id);
    backdoor.queues.add(backdoor.names.rpcQueue(shop.name));
    const worker = makeBus([], id, 'worker');
    worker.registerApi(shop, {
      price: ({ sku, quantity }) => (sku === 'apple' ? 0.5 : 2) * quantity,
      explode: ({ message }) => {
        throw new RangeError(message);
      },
    });
    await worker.start();
    const client = makeBus([shop], id, 'client');
    const api = client.api(shop.name);
    await expect(api.call('price', { sku: 'apple', quantity: 4 })).resolves.toBe(2);
    const many = await Promise.all(Array.from({ length: 40 }, (_, i) => api.call('price', { sku: 'pear', quantity: i })));
    expect(many).toEqual(Array.from({ length: 40 }, (_, i) => 2 * i));
    await expect(api.call('explode', { message: 'out of stock' })).rejects.toMatchObject({
      code: ErrorCodes.REMOTE_ERROR,
      message: expect.stringContaining('out of stock') as unknown,
    });
    await worker.close({ timeoutMs: 1000 });
    await expect(api.call('price', { sku: 'apple', quantity: 1 }, { timeout: 0.5 })).rejects.toMatchObject({ code: ErrorCodes.RPC_TIMEOUT });
  });

  it('delivers fired events with values cast back, and dead-letters a handler that keeps failing', async () => {
    const id = randomBytes(4).toString('hex');
    const { shop } = apis(id);
    const owner = makeBus([shop], id, 'owner');
    owner.registerApi(shop, { price: () => 1, explode: () => 1 });
    const listener = makeBus([shop], id, 'listener', { max_deliveries: 2 });
    const received: Array<{ orderId: string; placedAt: Date; total: bigint; deliveryCount: number }> = [];
    listener.api(shop.name);
    listener.listen(
      [{ api: shop.name, event: 'order_placed' }],
      (params, context) => {
        const p = params as { orderId: string; placedAt: Date; total: bigint };
        received.push({ ...p, deliveryCount: context.deliveryCount });
        if (p.orderId === 'poison') throw new Error('cannot ship');
      },
      { listenerName: 'shipping' },
    );
    await listener.start();
    await listening(`svc_${id}-shipping`);
    const placedAt = new Date('2026-05-01T10:00:00Z');
    await owner.fire(shop.name, 'orderPlaced', { orderId: 'o1', placedAt, total: 12345678901234567890n });
    await owner.fire(shop.name, 'orderPlaced', { orderId: 'poison', placedAt, total: 1n });
    await expect.poll(() => received.filter((r) => r.orderId === 'poison').length, { timeout: 5000 }).toBe(2);
    expect(received.find((r) => r.orderId === 'o1')).toEqual({ orderId: 'o1', placedAt, total: 12345678901234567890n, deliveryCount: 1 });
    expect(received.filter((r) => r.orderId === 'poison').map((r) => r.deliveryCount)).toEqual([1, 2]);
    await expect
      .poll(async () => (await backdoor.deadLetters()).filter((d) => d.listener === `svc_${id}-shipping`).length, { timeout: 5000 })
      .toBe(1);
    const [letter] = (await backdoor.deadLetters()).filter((d) => d.listener === `svc_${id}-shipping`);
    expect(letter).toMatchObject({ error: 'Error: cannot ship', attempts: 2 });
    expect(letter!.message?.kwargs).toMatchObject({ orderId: 'poison' });
  });
});
