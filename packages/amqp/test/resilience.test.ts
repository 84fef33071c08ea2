import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { newMessageId, silentLogger, type EventMessage, type ReceivedEvent, type RpcMessage } from '@lightbus/core';
import { newContext } from '@lightbus/transport-test-suite';
import { AmqpEventTransport, AmqpResultTransport, AmqpRpcTransport, DEADLINE_HEADER } from '../src/index.js';
import { AMQP_URL, Backdoor, testPrefix } from './helpers.js';
import { TcpProxy } from './proxy.js';

const backdoor = new Backdoor(testPrefix());
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => backdoor.dispose());

function eventOf(apiName: string, kwargs: Record<string, unknown>): EventMessage {
  return { id: newMessageId(), apiName, eventName: 'e', version: 1, kwargs };
}

function track<T extends { close(): Promise<void> }>(t: T): T {
  cleanups.push(() => t.close());
  return t;
}

/** Consumes a group in the background, acknowledging everything, until stopped. */
function collect(transport: AmqpEventTransport, listenerName: string, apiName: string, ctxQueueOwner: string) {
  backdoor.queues.add(backdoor.names.groupQueue(`${ctxQueueOwner}-${listenerName}`));
  const received: ReceivedEvent[] = [];
  const controller = new AbortController();
  const done = (async () => {
    for await (const batch of transport.consume({ listenerName, events: [{ apiName, eventName: 'e' }], signal: controller.signal })) {
      for (const e of batch) {
        received.push(e);
        await e.ack();
      }
    }
  })();
  cleanups.push(async () => {
    controller.abort();
    await done;
  });
  return { received, done, stop: () => controller.abort() };
}

async function groupReady(group: string): Promise<void> {
  await expect
    .poll(() => backdoor.withChannel(async (ch) => (await ch.checkQueue(backdoor.names.groupQueue(group))).consumerCount).catch(() => 0), { timeout: 5000 })
    .toBeGreaterThan(0);
}

describe('amqp transports survive failures', () => {
  it('reconnects after the connection drops: consumers resume, sends wait, nothing is lost', async () => {
    const proxy = await TcpProxy.start();
    cleanups.push(() => proxy.close());
    const ctx = newContext();
    const [api] = ctx.apis;
    const viaProxy = track(new AmqpEventTransport(backdoor.options({ url: proxy.url, acknowledgement_timeout: 1 }), ctx));
    const direct = track(new AmqpEventTransport(backdoor.options(), { ...ctx, processName: 'sender' }));
    const c = collect(viaProxy, 'resilient', api, ctx.serviceName);
    await groupReady(`${ctx.serviceName}-resilient`);
    for (let i = 0; i < 20; i++) await direct.send(eventOf(api, { i }));
    await expect.poll(() => c.received.length, { timeout: 5000 }).toBe(20);

    proxy.cut(500); // the connection drops, and stays down for half a second
    for (let i = 20; i < 40; i++) await direct.send(eventOf(api, { i })); // queued by RabbitMQ meanwhile
    await viaProxy.send(eventOf(api, { i: 40 })); // waits for the reconnect, then publishes
    await expect.poll(() => new Set(c.received.map((e) => e.message.kwargs['i'])).size, { timeout: 10_000 }).toBe(41);
    expect(proxy.accepted).toBeGreaterThanOrEqual(2);
  });

  it('notices a silent network partition through heartbeats and reconnects', { timeout: 20_000 }, async () => {
    const proxy = await TcpProxy.start();
    cleanups.push(() => proxy.close());
    const ctx = newContext();
    const [api] = ctx.apis;
    const viaProxy = track(new AmqpEventTransport(backdoor.options({ url: proxy.url, heartbeat: 1 }), ctx));
    const direct = track(new AmqpEventTransport(backdoor.options(), { ...ctx, processName: 'sender' }));
    const c = collect(viaProxy, 'partitioned', api, ctx.serviceName);
    await groupReady(`${ctx.serviceName}-partitioned`);
    proxy.freeze(); // no close, no error: the bytes just stop
    await direct.send(eventOf(api, { n: 1 }));
    await expect.poll(() => c.received.length, { timeout: 10_000 }).toBe(1);
    expect(proxy.accepted).toBe(2);
  });

  it('declares its queue again when it is deleted under a running listener', async () => {
    const ctx = newContext();
    const [api] = ctx.apis;
    const group = `${ctx.serviceName}-phoenix`;
    const transport = track(new AmqpEventTransport(backdoor.options(), ctx));
    const c = collect(transport, 'phoenix', api, ctx.serviceName);
    await groupReady(group);
    await backdoor.withChannel((ch) => ch.deleteQueue(backdoor.names.groupQueue(group)));
    await groupReady(group); // RabbitMQ cancelled the consumer; the loop declared the queue again
    await transport.send(eventOf(api, { after: true }));
    await expect.poll(() => c.received.length, { timeout: 5000 }).toBe(1);
  });

  it('still counts the acknowledgement of an event handled after its listener stopped', async () => {
    const ctx = newContext();
    const [api] = ctx.apis;
    const transport = track(new AmqpEventTransport(backdoor.options({ acknowledgement_timeout: 5 }), ctx));
    backdoor.queues.add(backdoor.names.groupQueue(`${ctx.serviceName}-slow`));
    const controller = new AbortController();
    const received: ReceivedEvent[] = [];
    const loop = (async () => {
      for await (const batch of transport.consume({ listenerName: 'slow', events: [{ apiName: api, eventName: 'e' }], signal: controller.signal })) {
        received.push(...batch); // handled later, after the stop
      }
    })();
    await groupReady(`${ctx.serviceName}-slow`);
    await transport.send(eventOf(api, { n: 1 }));
    await expect.poll(() => received.length, { timeout: 5000 }).toBe(1);
    const stopped = Date.now();
    controller.abort();
    await loop;
    expect(Date.now() - stopped).toBeLessThan(1000); // the loop ends at once...
    await new Promise((r) => setTimeout(r, 200));
    await received[0]!.ack(); // ...and the handler's late acknowledgement still counts
    const other = track(new AmqpEventTransport(backdoor.options(), { ...ctx, processName: 'other' }));
    const c = collect(other, 'slow', api, ctx.serviceName);
    await new Promise((r) => setTimeout(r, 1000));
    expect(c.received.length).toBe(0);
    expect(await backdoor.count(backdoor.names.groupQueue(`${ctx.serviceName}-slow`))).toBe(0);
  });

  it('lets RabbitMQ dead-letter a message returned more often than max_deliveries', async () => {
    const ctx = newContext();
    const [api] = ctx.apis;
    const transport = track(new AmqpEventTransport(backdoor.options({ max_deliveries: 2 }), ctx));
    backdoor.queues.add(backdoor.names.groupQueue(`${ctx.serviceName}-crashy`));
    const counts: number[] = [];
    const controller = new AbortController();
    const loop = (async () => {
      for await (const batch of transport.consume({ listenerName: 'crashy', events: [{ apiName: api, eventName: 'e' }], signal: controller.signal })) {
        for (const e of batch) {
          counts.push(e.deliveryCount);
          await e.nack({ delayMs: 0, error: new Error('again') }); // as if its consumer kept dying
        }
      }
    })();
    cleanups.push(async () => {
      controller.abort();
      await loop;
    });
    await groupReady(`${ctx.serviceName}-crashy`);
    await transport.send(eventOf(api, { doomed: true }));
    await expect
      .poll(async () => (await backdoor.deadLetters()).filter((d) => d.message?.apiName === api).length, { timeout: 5000 })
      .toBe(1);
    expect(counts).toEqual([1, 2, 3]);
    const [letter] = (await backdoor.deadLetters()).filter((d) => d.message?.apiName === api);
    expect(JSON.stringify(letter!.raw.properties.headers?.['x-death'])).toContain('delivery_limit');
  });

  it('serves RPCs and carries results again after the connection drops', async () => {
    const proxy = await TcpProxy.start();
    cleanups.push(() => proxy.close());
    const ctx = newContext();
    const [api] = ctx.apis;
    backdoor.queues.add(backdoor.names.rpcQueue(api));
    const options = backdoor.options({ url: proxy.url });
    const rpc = track(new AmqpRpcTransport(options, ctx));
    const results = track(new AmqpResultTransport(options, ctx));
    // One connection for all roles built with the same options.
    await Promise.all([rpc.open(), results.open()]);
    expect(proxy.accepted).toBe(1);

    const controller = new AbortController();
    const serving = (async () => {
      for await (const call of rpc.consume([api], { signal: controller.signal })) {
        await results.send(call.returnPath, { id: newMessageId(), rpcMessageId: call.id, error: false, result: call.kwargs['n'] }, { rpc: call });
      }
    })();
    cleanups.push(async () => {
      controller.abort();
      await serving;
    });
    const roundTrip = async (n: number) => {
      const id = newMessageId();
      const pending = await results.prepare({ id, apiName: api, procedureName: 'p' });
      const call: RpcMessage = { id, apiName: api, procedureName: 'p', kwargs: { n }, returnPath: pending.returnPath, deadline: Date.now() + 8000 };
      await rpc.call(call, { timeoutMs: 8000 });
      try {
        return (await pending.wait({ timeoutMs: 8000 })).result;
      } finally {
        await pending.cancel();
      }
    };
    await expect(roundTrip(1)).resolves.toBe(1);
    proxy.cut(300);
    // A call published in the instant the connection drops fails (at most once: it is not sent
    // again behind the caller's back); once the transports reconnected, calls flow again.
    await expect.poll(() => proxy.accepted, { timeout: 5000 }).toBe(2);
    await expect(roundTrip(2)).resolves.toBe(2);
    await expect(roundTrip(3)).resolves.toBe(3);
    expect(proxy.accepted).toBe(2);
  });

  it('loses nothing when a listener process is killed in the middle of a batch', { timeout: 30_000 }, async () => {
    const ctx = newContext();
    const [api] = ctx.apis;
    const group = `${ctx.serviceName}-kill`;
    backdoor.queues.add(backdoor.names.groupQueue(group));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/fixtures/half-acking-consumer.ts', AMQP_URL, backdoor.prefix, ctx.serviceName, 'kill', api],
      { cwd: new URL('..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanups.push(() => child.kill('SIGKILL'));
    const report = new Promise<{ received: number; acked: number[]; held: number[] }>((resolve) => {
      createInterface({ input: child.stdout }).once('line', (line) => resolve(JSON.parse(line) as { received: number; acked: number[]; held: number[] }));
    });
    await groupReady(group);
    const sender = track(new AmqpEventTransport(backdoor.options(), ctx));
    for (let i = 0; i < 30; i++) await sender.send(eventOf(api, { i }));
    const { received, acked, held } = await report;
    expect(received).toBeGreaterThanOrEqual(10);
    expect(acked.length).toBe(Math.ceil(received / 2));
    child.kill('SIGKILL');

    const survivor = track(new AmqpEventTransport(backdoor.options(), { ...ctx, processName: 'survivor' }));
    const c = collect(survivor, 'kill', api, ctx.serviceName);
    await expect.poll(() => acked.length + c.received.length, { timeout: 10_000 }).toBe(30);
    await new Promise((r) => setTimeout(r, 300));
    const got = c.received.map((e) => e.message.kwargs['i'] as number);
    expect(new Set([...acked, ...got]).size).toBe(30); // every event handled...
    expect(got.filter((i) => acked.includes(i))).toEqual([]); // ...and acknowledged ones not again
    // What the killed process held unacknowledged came back, counted as a second delivery.
    const again = c.received.filter((e) => held.includes(e.message.kwargs['i'] as number));
    expect(again.length).toBe(held.length);
    expect(again.every((e) => e.deliveryCount >= 2)).toBe(true);
  });

  it('dead-letters malformed events with the reason and keeps consuming', async () => {
    const ctx = newContext();
    const [api] = ctx.apis;
    const transport = track(new AmqpEventTransport(backdoor.options(), ctx));
    const c = collect(transport, 'strict', api, ctx.serviceName);
    await groupReady(`${ctx.serviceName}-strict`);
    const key = `${api}.e`;
    await backdoor.publishRaw(key, Buffer.from('this is not json'));
    await backdoor.publishRaw(key, Buffer.from(JSON.stringify({ metadata: { id: 'x', api_name: api }, kwargs: {} })));
    await backdoor.publishRaw(key, Buffer.from('[1,2,3]'));
    await transport.send(eventOf(api, { ok: true }));
    await expect.poll(() => c.received.length, { timeout: 5000 }).toBe(1);
    expect(c.received[0]!.message.kwargs).toEqual({ ok: true });
    const letters = (await backdoor.deadLetters()).filter((d) => d.listener === `${ctx.serviceName}-strict`);
    expect(letters.map((d) => d.error)).toEqual([
      expect.stringMatching(/^malformed message: the body is not JSON/),
      'malformed message: metadata.event_name is missing or not a non-empty string',
      'malformed message: the body is not a JSON object',
    ]);
    expect(letters[0]!.raw.content.toString()).toBe('this is not json');
  });

  it('drops calls past their deadline header and malformed calls, and serves the next one', async () => {
    const ctx = newContext();
    const [api] = ctx.apis;
    const queue = backdoor.names.rpcQueue(api);
    backdoor.queues.add(queue);
    const rpc = track(new AmqpRpcTransport({ ...backdoor.options(), prefetch: 4 }, { ...ctx, logger: silentLogger }));
    await backdoor.withChannel(async (ch) => {
      await ch.assertQueue(queue, { durable: true });
      // No expiration, only the header: the worker itself must drop it.
      ch.sendToQueue(queue, Buffer.from(JSON.stringify({ metadata: { id: 'late', api_name: api, procedure_name: 'p', return_path: 'x://late' }, kwargs: {} })), {
        headers: { [DEADLINE_HEADER]: Date.now() - 1000 },
      });
      ch.sendToQueue(queue, Buffer.from('{"metadata": "nope"}'));
    });
    await rpc.call({ id: 'fresh', apiName: api, procedureName: 'p', kwargs: { n: 1 }, returnPath: 'x://fresh', deadline: Date.now() + 5000 }, { timeoutMs: 5000 });
    const got: RpcMessage[] = [];
    const controller = new AbortController();
    const loop = (async () => {
      for await (const m of rpc.consume([api], { signal: controller.signal })) got.push(m);
    })();
    await expect.poll(() => got.length, { timeout: 5000 }).toBe(1);
    expect(got[0]).toMatchObject({ id: 'fresh', kwargs: { n: 1 } });
    expect(got[0]!.deadline).toBeGreaterThan(Date.now());
    await new Promise((r) => setTimeout(r, 200));
    expect(got.length).toBe(1);
    expect(await backdoor.count(queue)).toBe(0);
    controller.abort();
    await loop;
  });
});

