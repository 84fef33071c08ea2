/**
 * Throughput of core's bus over the NATS transports, against the NATS server at
 * LIGHTBUS_BENCH_NATS_URL (default nats://127.0.0.1:4222). Client and server run in this one
 * process, sharing one connection. Prints figures; asserts nothing. Run: `pnpm bench`.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'nats';
import { createBus, defineApi, event, rpc, silentLogger, Type } from '@lightbus/core';
import { transportPlugin } from '../src/index.js';

const servers = process.env['LIGHTBUS_BENCH_NATS_URL'] ?? 'nats://127.0.0.1:4222';
const id = randomBytes(3).toString('hex');
const nats = { nats: { servers, subject_prefix: `lbbench_${id}`, stream_prefix: `lbbench_${id}`, ack_confirm: process.argv.includes('--ack-confirm') } };
const config = {
  service_name: 'bench',
  bus: { schema: { transport: nats } },
  apis: { default: { rpc_transport: nats, result_transport: nats, event_transport: nats, rpc_concurrency: 50 } },
};
const api = defineApi({
  name: `bench_${id}.api`,
  rpcs: { echo: rpc({ parameters: { n: Type.Number() }, response: Type.Number() }) },
  events: { tick: event({ parameters: { n: Type.Number() } }) },
});

const server = createBus({ apis: [api], config, transports: [transportPlugin], logger: silentLogger, processName: 'server' });
server.registerApi(api, { echo: ({ n }) => n });
let heard = 0;
server.api(api.name).listen('tick', () => void heard++, { listenerName: 'count', batchSize: 100 });
await server.start();
const client = createBus({ apis: [api], config, transports: [transportPlugin], logger: silentLogger, processName: 'client' });
const calls = client.api(api.name);
await calls.call('echo', { n: 0 });

const cpuStart = process.cpuUsage();
const wallStart = performance.now();
const rate = (n: number, since: number) => Math.round(n / ((performance.now() - since) / 1000));

const N = 5000;
let next = 0;
let t = performance.now();
await Promise.all(
  Array.from({ length: 50 }, async () => {
    while (next < N) await calls.call('echo', { n: next++ });
  }),
);
console.log(`RPC through the bus, 50 in flight:   ${rate(N, t)}/s`);
t = performance.now();
for (let i = 0; i < 500; i++) await calls.call('echo', { n: i });
console.log(`RPC through the bus, one at a time:  ${rate(500, t)}/s`);

await new Promise((r) => setTimeout(r, 300));
const E = 5000;
t = performance.now();
const pending: Array<Promise<void>> = [];
for (let i = 0; i < E; i++) {
  pending.push(server.api(api.name).fire('tick', { n: i }));
  if (pending.length >= 200) await Promise.all(pending.splice(0));
}
await Promise.all(pending);
console.log(`events fired (200 in flight):        ${rate(E, t)}/s`);
while (heard < E) await new Promise((r) => setTimeout(r, 5));
console.log(`events fired, heard and acknowledged: ${rate(E, t)}/s (listener concurrency 1, batch 100, ack_confirm ${String(nats.nats.ack_confirm)})`);
const cpu = process.cpuUsage(cpuStart);
const wall = (performance.now() - wallStart) / 1000;
console.log(`process CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s over ${wall.toFixed(1)} s wall (client and server in this process)`);

await client.close();
await server.close();
const nc = await connect({ servers });
const jsm = await nc.jetstreamManager();
for await (const name of jsm.streams.names()) {
  if (name.startsWith(`lbbench_${id}`) || name.startsWith(`KV_lbbench_${id}`)) await jsm.streams.delete(name);
}
await nc.close();
