import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createBus, defineApi, ErrorCodes, event, rpc, silentLogger, Type, Types, type AnyApi, type Bus } from '@lightbus/core';
import { natsTransports, transportPlugin } from '../src/index.js';
import { DEAD_LETTER_HEADERS } from '../src/events.js';
import { RUN_PREFIX, closeAdmin, deleteStreams, isolatedOptions, readStream } from './helpers.js';

// End to end: core's bus with NATS serving all four roles.
const id = randomBytes(4).toString('hex');
const apiName = `lbtest_${id}.auth`;
const authApi = defineApi({
  name: apiName,
  events: {
    userRegistered: event({ parameters: { username: Type.String(), at: Types.DateTime() } }),
  },
  rpcs: {
    checkPassword: rpc({ parameters: { username: Type.String(), password: Type.String() }, response: Type.Boolean() }),
    fail: rpc({ parameters: { message: Type.String() } }),
    slow: rpc({ parameters: { ms: Type.Number() }, response: Type.Number() }),
  },
});

const nats = { nats: isolatedOptions(id) };
const config = {
  service_name: `svc_${id}`,
  bus: { schema: { transport: nats, ttl: 30 } },
  apis: { default: { rpc_transport: nats, result_transport: nats, event_transport: nats, rpc_timeout: 2, retry_delay: 0.05, max_deliveries: 2 } },
};

const buses: Array<Bus<readonly AnyApi[]>> = [];
function makeBus<const A extends readonly AnyApi[]>(apis: A, processName: string): Bus<A> {
  const bus = createBus({ apis, config, transports: [transportPlugin], logger: silentLogger, processName });
  buses.push(bus as unknown as Bus<readonly AnyApi[]>);
  return bus;
}

afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close({ timeoutMs: 2000 })));
});
afterAll(async () => {
  await deleteStreams(`${RUN_PREFIX}_${id}_`);
  await closeAdmin();
});

describe('createBus with nats for all four roles', () => {
  it('is the plugin core loads for `nats`', () => {
    expect(transportPlugin.name).toBe('nats');
    expect(natsTransports).toBe(transportPlugin);
    expect(transportPlugin.createRpcTransport && transportPlugin.createResultTransport && transportPlugin.createEventTransport && transportPlugin.createSchemaTransport).toBeTruthy();
  });

  it('calls RPCs, fires and hears events, publishes and loads schemas, dead-letters a failing event', async () => {
    const server = makeBus([], 'server');
    server.registerApi(authApi, {
      checkPassword: ({ username, password }) => username === 'admin' && password === 'secret',
      fail: ({ message }) => {
        throw new TypeError(message);
      },
      slow: async ({ ms }) => {
        await new Promise((r) => setTimeout(r, ms));
        return ms;
      },
    });
    await server.start();

    const client = makeBus([authApi], 'client');
    const heard: Array<{ username: string; at: unknown; deliveryCount: number }> = [];
    const auth = client.api(apiName);
    auth.listen(
      'user_registered',
      ({ username, at }, e) => {
        heard.push({ username: username as string, at, deliveryCount: e.deliveryCount });
        if (username === 'poison') throw new Error('cannot handle poison');
      },
      { listenerName: 'welcome' },
    );
    await client.start();
    await new Promise((r) => setTimeout(r, 300)); // consumers in place

    // RPC over core NATS, results over the inbox.
    await expect(auth.call('check_password', { username: 'admin', password: 'secret' })).resolves.toBe(true);
    await expect(auth.call('check_password', { username: 'admin', password: 'nope' })).resolves.toBe(false);
    await expect(auth.call('fail', { message: 'boom' })).rejects.toMatchObject({ code: ErrorCodes.REMOTE_ERROR, remoteError: "TypeError('boom')" });
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => auth.call('slow', { ms: i % 5 })));
    expect(many).toEqual(Array.from({ length: 50 }, (_, i) => i % 5));
    await expect(auth.call('slow', { ms: 2500 })).rejects.toMatchObject({ code: ErrorCodes.RPC_TIMEOUT });

    // Events over JetStream, cast back to Date.
    const at = new Date('2026-05-01T10:00:00Z');
    for (const username of ['alice', 'poison', 'bob']) await server.api(apiName).fire('user_registered', { username, at });
    await expect.poll(() => heard.filter((h) => h.username !== 'poison').map((h) => h.username), { timeout: 5000 }).toEqual(['alice', 'bob']);
    expect(heard[0]!.at).toEqual(at);
    // The poison event was tried max_deliveries (2) times, then dead-lettered with its error.
    await expect.poll(async () => (await readStream(`${RUN_PREFIX}_${id}_dead_lbtest_${id}-auth`)).length, { timeout: 5000 }).toBe(1);
    const [dead] = await readStream(`${RUN_PREFIX}_${id}_dead_lbtest_${id}-auth`);
    expect(dead!.headers[DEAD_LETTER_HEADERS.error]).toContain('cannot handle poison');
    expect(dead!.headers[DEAD_LETTER_HEADERS.attempts]).toBe('2');
    expect(dead!.headers[DEAD_LETTER_HEADERS.listener]).toBe(`svc_${id}-welcome`);
    expect(heard.filter((h) => h.username === 'poison').map((h) => h.deliveryCount)).toEqual([1, 2]);

    // Schemas in the key-value bucket: a process that knows no definition loads it from the bus.
    const stranger = makeBus([], 'stranger');
    const schemas = await stranger.loadSchemas();
    expect(Object.keys(schemas[apiName]!.rpcs).sort()).toEqual(['check_password', 'fail', 'slow']);
    await expect(stranger.api(apiName).call('check_password', { username: 'admin', password: 'secret' })).resolves.toBe(true);
  });

  it('fails a call at once when no worker serves the API', async () => {
    const client = makeBus([authApi], 'lonely');
    const started = Date.now();
    const error = await client.api(apiName).call('check_password', { username: 'a', password: 'b' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.TRANSPORT_ERROR });
    expect((error as Error).message).toContain('No worker is serving');
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
