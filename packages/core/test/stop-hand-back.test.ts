import { afterEach, describe, expect, it } from 'vitest';
import { createBus, deleteMemoryBroker, memoryTransports, silentLogger, type EventTransport, type ReceivedEvent, type TransportPlugin } from '../src/index.js';
import { authApi } from './fixtures.js';

const broker = `hand_back_${process.pid}`;
afterEach(() => deleteMemoryBroker(broker));

/** The memory transport, recording every nack (which event, which delay) the bus makes. */
const nacks: Array<{ username: unknown; delayMs: number }> = [];
const recording: TransportPlugin = {
  ...memoryTransports,
  name: 'recording',
  createEventTransport: (options, context) => {
    const inner = memoryTransports.createEventTransport!(options, context);
    const wrap = (r: ReceivedEvent): ReceivedEvent => ({
      message: r.message,
      position: r.position,
      deliveryCount: r.deliveryCount,
      ack: () => r.ack(),
      deadLetter: (e) => r.deadLetter(e),
      nack: (o) => {
        nacks.push({ username: r.message.kwargs['username'], delayMs: o.delayMs });
        return r.nack(o);
      },
    });
    const transport: EventTransport = {
      capabilities: inner.capabilities,
      send: (m, o) => inner.send(m, o),
      close: () => inner.close(),
      consume: async function* (subscription) {
        for await (const batch of inner.consume(subscription)) yield batch.map(wrap);
      },
    };
    return transport;
  },
};

function config() {
  // A long acknowledgement timeout: without the hand-back, unstarted events would wait 60 s.
  const memory = { memory: { broker, acknowledgement_timeout: 60 } };
  const events = { recording: { broker, acknowledgement_timeout: 60 } };
  return { service_name: 'svc', bus: { schema: { transport: memory } }, apis: { default: { rpc_transport: memory, result_transport: memory, event_transport: events } } };
}

describe('stopping a listener', () => {
  it('hands the unstarted events of its batch back at once; another process of the service takes them', async () => {
    const first = createBus({ apis: [authApi], config: config(), transports: [recording as TransportPlugin<never>], logger: silentLogger, processName: 'p1' });
    const second = createBus({ apis: [authApi], config: config(), transports: [recording as TransportPlugin<never>], logger: silentLogger, processName: 'p2' });
    const producer = createBus({ apis: [authApi], config: config(), transports: [recording as TransportPlugin<never>], logger: silentLogger, processName: 'p0' });
    const client = producer.registerApi(authApi, { checkPassword: () => true, echo: ({ value }) => value, fail: () => undefined });
    const handled: Array<[string, string]> = [];
    let release: () => void = () => undefined;
    const blocked = new Promise<void>((r) => (release = r));
    first.my_company.auth.userRegistered.listen(
      async ({ username }) => {
        handled.push(['p1', username]);
        await blocked;
      },
      { listenerName: 'welcome', batchSize: 10, since: 'all' },
    );
    for (let i = 0; i < 10; i++) await client.userRegistered.fire({ username: `u${i}`, email: 'e' });
    await first.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(handled).toEqual([['p1', 'u0']]);
    const stopping = first.stop({ timeoutMs: 5000 });
    release();
    await stopping;
    // The nine events read but never started were handed back without delay.
    expect(nacks.map((n) => n.username).sort()).toEqual(Array.from({ length: 9 }, (_, i) => `u${i + 1}`).sort());
    expect(nacks.every((n) => n.delayMs === 0)).toBe(true);
    second.my_company.auth.userRegistered.listen(async ({ username }) => void handled.push(['p2', username]), { listenerName: 'welcome' });
    await second.start();
    const deadline = Date.now() + 3000;
    while (handled.length < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(handled.map(([, u]) => u).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `u${i}`).sort());
    expect(handled.filter(([p]) => p === 'p2')).toHaveLength(9);
    await Promise.all([first.close(), second.close(), producer.close()]);
  });
});
