import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { newMessageId, type EventMessage } from '@lightbus/core';
import { Collector, eventually, newContext } from '@lightbus/transport-test-suite';
import { NatsEventTransport } from '../src/events.js';
import { NatsResultTransport } from '../src/result.js';
import { NatsRpcTransport } from '../src/rpc.js';
import { PrivateNatsServer, freePort } from './private-server.js';

// Our own nats-server on a free port, so that stopping and restarting it disturbs nobody.
const storeDir = mkdtempSync(join(tmpdir(), 'lightbus-nats-'));
let server: PrivateNatsServer | undefined;

afterAll(async () => {
  await server?.stop();
  rmSync(storeDir, { recursive: true, force: true });
});

const eventOf = (apiName: string, i: number): EventMessage => ({ id: newMessageId(), apiName, eventName: 'e', version: 1, kwargs: { i } });

describe('nats server restart', () => {
  it('resumes consuming after the server restarts: every event arrives, RPC works again', { timeout: 40_000 }, async () => {
    const port = await freePort();
    server = new PrivateNatsServer(port, ['-js', '-sd', storeDir]);
    await server.start();
    const context = newContext();
    const options = { servers: `nats://127.0.0.1:${port}`, subject_prefix: 'lbt', stream_prefix: 'lbt', acknowledgement_timeout: 2 };
    const events = new NatsEventTransport(options, context);
    const rpc = new NatsRpcTransport(options, context);
    const results = new NatsResultTransport(options, context);
    await Promise.all([events.open(), rpc.open(), results.open()]);
    const [api] = context.apis;
    const c = new Collector(events, { listenerName: 'survivor', events: [{ apiName: api, eventName: 'e' }] });
    try {
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < 5; i++) await events.send(eventOf(api, i));
      await eventually(() => c.received.length === 5, 5000, 'events before the restart');

      await server.stop();
      await new Promise((r) => setTimeout(r, 500));
      await server.start();

      // Sending waits for the reconnection (the client buffers while reconnecting).
      for (let i = 5; i < 10; i++) await events.send(eventOf(api, i));
      await eventually(() => new Set(c.received.map((r) => r.message.kwargs['i'])).size === 10, 20_000, 'every event after the restart');

      // RPC and results work over the re-established connection (subscriptions are restored).
      const served: string[] = [];
      const controller = new AbortController();
      const loop = (async () => {
        for await (const m of rpc.consume([api], { signal: controller.signal })) {
          served.push(m.id);
          await results.send(m.returnPath, { id: newMessageId(), rpcMessageId: m.id, error: false, result: 'pong' }, { rpc: m });
        }
      })();
      const pending = await results.prepare({ id: 'r1', apiName: api, procedureName: 'ping' });
      await new Promise((r) => setTimeout(r, 100));
      await rpc.call({ id: 'r1', apiName: api, procedureName: 'ping', kwargs: {}, returnPath: pending.returnPath }, { timeoutMs: 5000 });
      await expect(pending.wait({ timeoutMs: 5000 })).resolves.toMatchObject({ result: 'pong', rpcMessageId: 'r1' });
      controller.abort();
      await loop;
    } finally {
      await c.stop();
      await Promise.all([events.close(), rpc.close(), results.close()]);
    }
  });
});
