/**
 * Rough figures for the amqp transports against the local RabbitMQ (client and worker in this
 * one process, so they share its CPU). Run: `node --import tsx bench/throughput.ts`.
 * Prints figures; asserts nothing. Uses its own prefix and deletes what it declared.
 */
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { newMessageId, silentLogger, type RpcMessage } from '@lightbus/core';
import { AmqpEventTransport, AmqpResultTransport, AmqpRpcTransport, amqpNames } from '../src/index.js';

const url = process.env['LIGHTBUS_AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672';
const prefix = `lbbench_${randomBytes(4).toString('hex')}`;
const options = { url, queue_prefix: prefix };
const api = `bench_${randomBytes(3).toString('hex')}`;
const ctx = (processName: string) => ({ serviceName: 'bench', processName, logger: silentLogger });

function cpu<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; cpuMs: number }> {
  const started = performance.now();
  const c0 = process.cpuUsage();
  return fn().then((value) => {
    const c = process.cpuUsage(c0);
    return { value, ms: performance.now() - started, cpuMs: (c.user + c.system) / 1000 };
  });
}

const rpc = new AmqpRpcTransport(options, ctx('worker'));
const caller = new AmqpRpcTransport({ ...options, prefetch: 64 }, ctx('caller'));
const results = new AmqpResultTransport(options, ctx('caller'));
const controller = new AbortController();
const serving = (async () => {
  for await (const call of rpc.consume([api], { signal: controller.signal })) {
    void results.send(call.returnPath, { id: newMessageId(), rpcMessageId: call.id, error: false, result: call.kwargs['n'] }, { rpc: call });
  }
})();

async function roundTrip(n: number): Promise<void> {
  const id = newMessageId();
  const pending = await results.prepare({ id, apiName: api, procedureName: 'p' });
  const call: RpcMessage = { id, apiName: api, procedureName: 'p', kwargs: { n }, returnPath: pending.returnPath, deadline: Date.now() + 10_000 };
  await caller.call(call, { timeoutMs: 10_000 });
  await pending.wait({ timeoutMs: 10_000 });
  await pending.cancel();
}

const events = new AmqpEventTransport(options, ctx('events'));
try {
  await roundTrip(0);
  for (const [label, total, inFlight] of [
    ['RPC round trip, one at a time', 1000, 1],
    ['RPC round trip, 50 in flight', 5000, 50],
  ] as const) {
    const { ms, cpuMs } = await cpu(async () => {
      let next = 0;
      await Promise.all(Array.from({ length: inFlight }, async () => {
        while (next < total) await roundTrip(next++);
      }));
    });
    console.log(`${label}: ${Math.round((total / ms) * 1000)}/s (${total} in ${Math.round(ms)} ms, process CPU ${Math.round((cpuMs / ms) * 100)}%)`);
  }
  controller.abort();
  await serving;

  const received = { n: 0 };
  const stop = new AbortController();
  const listening = (async () => {
    for await (const batch of events.consume({ listenerName: 'bench', events: [{ apiName: api, eventName: 'e' }], batchSize: 100, signal: stop.signal })) {
      for (const e of batch) {
        await e.ack();
        received.n++;
      }
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  const total = 20_000;
  const { ms, cpuMs } = await cpu(async () => {
    for (let i = 0; i < total; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => events.send({ id: newMessageId(), apiName: api, eventName: 'e', version: 1, kwargs: { i: i + j } })));
    }
    while (received.n < total) await new Promise((r) => setTimeout(r, 5));
  });
  console.log(`Events, confirmed publish (500 in flight) -> quorum queue -> consume batch 100: ${Math.round((total / ms) * 1000)}/s (${total} in ${Math.round(ms)} ms, process CPU ${Math.round((cpuMs / ms) * 100)}%)`);
  stop.abort();
  await listening;
} finally {
  controller.abort();
  await Promise.all([rpc.close(), caller.close(), results.close(), events.close()]);
  const names = amqpNames(prefix);
  const admin = await amqp.connect(url);
  const ch = await admin.createChannel();
  for (const q of [names.rpcQueue(api), names.groupQueue('bench-bench'), names.deadQueue]) await ch.deleteQueue(q);
  for (const ex of [names.eventsExchange, names.deadExchange]) await ch.deleteExchange(ex);
  await admin.close();
}
