import { afterEach, describe, expect, it } from 'vitest';
import {
  createBus,
  deleteMemoryBroker,
  ErrorCodes,
  getMemoryBroker,
  LightbusError,
  silentLogger,
  type Bus,
  type AnyApi,
} from '../src/index.js';
import { authApi, shopApi } from './fixtures.js';

let counter = 0;
const cleanups: Array<() => Promise<void>> = [];

function memoryConfig(broker: string, extra: Record<string, unknown> = {}) {
  const memory = { memory: { broker, acknowledgement_timeout: 1 } };
  return {
    service_name: 'test_service',
    bus: { schema: { transport: memory } },
    apis: { default: { rpc_transport: memory, result_transport: memory, event_transport: memory, rpc_timeout: 1, retry_delay: 0.01, ...extra } },
  };
}

function makeBus<const A extends readonly AnyApi[]>(apis: A, broker: string, extra: Record<string, unknown> = {}, processName = 'p1'): Bus<A> {
  const bus = createBus({ apis, config: memoryConfig(broker, extra), logger: silentLogger, processName });
  cleanups.push(() => bus.close({ timeoutMs: 1000 }));
  return bus;
}

afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function freshBroker() {
  const name = `bus-test-${process.pid}-${++counter}`;
  cleanups.push(async () => deleteMemoryBroker(name));
  return name;
}

describe('RPC', () => {
  it('answers a typed call from a worker that registered the API', async () => {
    const broker = freshBroker();
    const server = makeBus([], broker);
    server.registerApi(authApi, {
      checkPassword: ({ username, password }) => username === 'admin' && password === 'secret',
      echo: ({ value }) => value,
      fail: ({ message }) => {
        throw new Error(message);
      },
    });
    await server.start();
    const client = makeBus([authApi], broker);
    await expect(client.my_company.auth.checkPassword({ username: 'admin', password: 'secret' })).resolves.toBe(true);
    await expect(client.my_company.auth.checkPassword({ username: 'admin', password: 'nope' })).resolves.toBe(false);
    await expect(client.my_company.auth.echo({ value: { a: [1, 'é'] } })).resolves.toEqual({ a: [1, 'é'] });
    // Untyped, by wire name, through api():
    await expect(client.api('my_company.auth').call('check_password', { username: 'admin', password: 'secret' })).resolves.toBe(true);
  });

  it('rejects bad arguments with the JSON path, before sending', async () => {
    const client = makeBus([authApi], freshBroker());
    const call = client.api('my_company.auth').call('check_password', { username: 7, passwrd: 'x' });
    await expect(call).rejects.toMatchObject({ code: ErrorCodes.VALIDATION_FAILED });
    const error = (await call.catch((e: unknown) => e)) as { issues: Array<{ path: string }>; message: string };
    expect(error.issues.map((i) => i.path).sort()).toEqual(['$.password', '$.passwrd', '$.username']);
    expect(error.message).toContain('RPC my_company.auth.check_password()');
  });

  it('turns a remote exception into a RemoteError with the remote text', async () => {
    const broker = freshBroker();
    const server = makeBus([], broker);
    server.registerApi(authApi, { checkPassword: () => true, echo: ({ value }) => value, fail: ({ message }) => Promise.reject(new TypeError(message)) });
    await server.start();
    const client = makeBus([authApi], broker);
    const error = await client.my_company.auth.fail({ message: 'boom' }).catch((e: unknown) => e);
    expect(LightbusError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ code: ErrorCodes.REMOTE_ERROR, remoteError: "TypeError('boom')" });
    expect((error as { remoteTrace: string }).remoteTrace).toContain('TypeError: boom');
  });

  it('times out cleanly when nobody serves the API', async () => {
    const client = makeBus([authApi], freshBroker());
    const started = Date.now();
    const error = await client.my_company.auth.checkPassword({ username: 'a', password: 'b' }, { timeout: 0.2 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.RPC_TIMEOUT, retryable: true });
    expect((error as Error).message).toContain('my_company.auth');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('does not run a call whose deadline passed, nor deliver a stale result', async () => {
    const broker = freshBroker();
    const client = makeBus([shopApi], broker);
    await expect(client.shop.slow({ ms: 1 }, { timeout: 0.05 })).rejects.toMatchObject({ code: ErrorCodes.RPC_TIMEOUT });
    // Timers and Date.now() may disagree by a millisecond: make sure the deadline is behind us.
    await new Promise((r) => setTimeout(r, 5));
    const server = makeBus([], broker);
    let ran = 0;
    server.registerApi(shopApi, {
      nextDelivery: ({ after }) => after,
      slow: async ({ ms }) => {
        ran++;
        await new Promise((r) => setTimeout(r, ms));
        return ms;
      },
    });
    await server.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(ran).toBe(0); // the expired call was dropped
    await expect(client.shop.slow({ ms: 300 }, { timeout: 0.1 })).rejects.toMatchObject({ code: ErrorCodes.RPC_TIMEOUT });
    expect(getMemoryBroker(broker).results.size).toBe(0);
  });

  it('casts dates back for typed callers and handlers', async () => {
    const broker = freshBroker();
    const server = makeBus([], broker);
    server.registerApi(shopApi, {
      nextDelivery: ({ after }) => {
        expect(after).toBeInstanceOf(Date);
        return new Date(after.getTime() + 86_400_000);
      },
      slow: ({ ms }) => ms,
    });
    await server.start();
    const client = makeBus([shopApi], broker);
    const next = await client.shop.nextDelivery({ after: new Date('2026-01-01T00:00:00Z') });
    expect(next).toBeInstanceOf(Date);
    expect(next.toISOString()).toBe('2026-01-02T00:00:00.000Z');
  });
});

describe('events', () => {
  it('delivers a fired event to a listener, with defaults applied and values cast', async () => {
    const broker = freshBroker();
    const owner = makeBus([authApi, shopApi], broker);
    owner.registerApi(shopApi, { nextDelivery: ({ after }) => after, slow: ({ ms }) => ms });
    const listenerBus = makeBus([shopApi], broker, {}, 'listener1');
    const received: unknown[] = [];
    listenerBus.shop.orderPlaced.listen(
      (params, event) => {
        received.push({ ...params, version: event.version, name: event.eventName });
      },
      { listenerName: 'audit' },
    );
    await listenerBus.start();
    await owner.shop.orderPlaced.fire({ orderId: 'o1', placedAt: new Date('2026-05-01T10:00:00Z'), total: 12345678901234567890n });
    await expect.poll(() => received.length).toBe(1);
    expect(received[0]).toEqual({
      orderId: 'o1',
      placedAt: new Date('2026-05-01T10:00:00Z'),
      total: 12345678901234567890n,
      gift: false,
      version: 2,
      name: 'order_placed',
    });
  });

  it('refuses to fire an event of an API this process did not register', async () => {
    const bus = makeBus([authApi], freshBroker());
    await expect(bus.my_company.auth.userRegistered.fire({ username: 'a', email: 'b' })).rejects.toMatchObject({
      code: ErrorCodes.NOT_AUTHORITATIVE,
      message: expect.stringContaining('registerApi') as unknown,
    });
  });

  it('gives every listener name every event, and shares one name across processes', async () => {
    const broker = freshBroker();
    const owner = makeBus([authApi, shopApi], broker);
    owner.registerApi(authApi, { checkPassword: () => true, echo: ({ value }) => value, fail: () => 1 });
    const seen = { a1: [] as string[], a2: [] as string[], b: [] as string[] };
    const p1 = makeBus([authApi], broker, {}, 'w1');
    const p2 = makeBus([authApi], broker, {}, 'w2');
    p1.my_company.auth.userRegistered.listen(({ username }) => void seen.a1.push(username), { listenerName: 'welcome' });
    p2.my_company.auth.userRegistered.listen(({ username }) => void seen.a2.push(username), { listenerName: 'welcome' });
    p2.my_company.auth.userRegistered.listen(({ username }) => void seen.b.push(username), { listenerName: 'audit' });
    await p1.start();
    await p2.start();
    for (let i = 0; i < 20; i++) await owner.my_company.auth.userRegistered.fire({ username: `u${i}`, email: 'e' });
    await expect.poll(() => seen.a1.length + seen.a2.length).toBe(20);
    await expect.poll(() => seen.b.length).toBe(20);
    expect(new Set([...seen.a1, ...seen.a2]).size).toBe(20);
  });

  it('retries a failing handler with backoff, then dead-letters it; later events still flow', async () => {
    const broker = freshBroker();
    const owner = makeBus([authApi, shopApi], broker);
    owner.registerApi(authApi, { checkPassword: () => true, echo: ({ value }) => value, fail: () => 1 });
    const listener = makeBus([authApi], broker, { max_deliveries: 3 });
    const attempts: Record<string, number> = {};
    listener.my_company.auth.userRegistered.listen(
      ({ username }) => {
        attempts[username] = (attempts[username] ?? 0) + 1;
        if (username === 'poison') throw new Error('cannot handle');
      },
      { listenerName: 'fragile' },
    );
    await listener.start();
    await owner.my_company.auth.userRegistered.fire({ username: 'poison', email: 'e' });
    await owner.my_company.auth.userRegistered.fire({ username: 'fine', email: 'e' });
    await expect.poll(() => getMemoryBroker(broker).deadLetters.length).toBe(1);
    expect(attempts).toEqual({ poison: 3, fine: 1 });
    expect(getMemoryBroker(broker).deadLetters[0]).toMatchObject({ group: 'test_service-fragile', attempts: 3, error: 'Error: cannot handle' });
  });

  it('listens to several events with one listener', async () => {
    const broker = freshBroker();
    const owner = makeBus([authApi, shopApi], broker);
    owner.registerApi(authApi, { checkPassword: () => true, echo: ({ value }) => value, fail: () => 1 });
    owner.registerApi(shopApi, { nextDelivery: ({ after }) => after, slow: ({ ms }) => ms });
    const bus = makeBus([authApi, shopApi], broker);
    const names: string[] = [];
    bus.listen([bus.my_company.auth.userRegistered, { api: 'shop', event: 'order_placed' }], (_params, event) => void names.push(event.eventName), {
      listenerName: 'everything',
    });
    await bus.start();
    await owner.my_company.auth.userRegistered.fire({ username: 'u', email: 'e' });
    await owner.shop.orderPlaced.fire({ orderId: 'o', placedAt: new Date(), total: 1n });
    await expect.poll(() => names.sort()).toEqual(['order_placed', 'user_registered']);
  });

  it('stops gracefully: in-flight handlers finish and are acknowledged', async () => {
    const broker = freshBroker();
    const owner = makeBus([authApi, shopApi], broker);
    owner.registerApi(authApi, { checkPassword: () => true, echo: ({ value }) => value, fail: () => 1 });
    const bus = makeBus([authApi], broker);
    let finished = 0;
    let started = 0;
    bus.my_company.auth.userRegistered.listen(
      async () => {
        started++;
        await new Promise((r) => setTimeout(r, 200));
        finished++;
      },
      { listenerName: 'slow', concurrency: 5 },
    );
    await bus.start();
    for (let i = 0; i < 5; i++) await owner.my_company.auth.userRegistered.fire({ username: `u${i}`, email: 'e' });
    await expect.poll(() => started).toBe(5);
    await bus.stop({ timeoutMs: 5000 });
    expect(finished).toBe(5);
    const group = getMemoryBroker(broker).streams.get('my_company.auth')!.groups.get('test_service-slow')!;
    expect(group.pending.size).toBe(0);
  });

  it('runs onStart hooks before listeners, so listeners can be set up there', async () => {
    const broker = freshBroker();
    const owner = makeBus([authApi, shopApi], broker);
    owner.registerApi(authApi, { checkPassword: () => true, echo: ({ value }) => value, fail: () => 1 });
    const bus = makeBus([authApi], broker);
    const heard: string[] = [];
    bus.onStart((b) => {
      b.my_company.auth.userRegistered.listen(({ username }) => void heard.push(username), { listenerName: 'hooked' });
    });
    await bus.start();
    await owner.my_company.auth.userRegistered.fire({ username: 'x', email: 'e' });
    await expect.poll(() => heard).toEqual(['x']);
  });
});

describe('class-style APIs', () => {
  it('serves RPCs with the handlers declared in the class', async () => {
    const { classAuthApi } = await import('./fixtures.js');
    const broker = freshBroker();
    const server = makeBus([], broker);
    server.registerApi(classAuthApi);
    await server.start();
    const client = makeBus([classAuthApi], broker);
    await expect(client.auth.checkPassword({ username: 'admin', password: 'secret' })).resolves.toBe(true);
  });

  it('refuses to register an object-style API without its implementation', async () => {
    const { objectAuthApi } = await import('./fixtures.js');
    const bus = makeBus([], freshBroker());
    // @ts-expect-error the implementation is required when the definition has no handlers
    expect(() => bus.registerApi(objectAuthApi)).toThrow(/no method "checkPassword"/);
  });
});

describe('remote error codes', () => {
  it('tells the caller when the worker rejected the arguments (remoteCode)', async () => {
    const broker = freshBroker();
    const server = makeBus([], broker);
    server.registerApi(authApi, {
      checkPassword: () => true,
      echo: ({ value }) => value,
      fail: ({ message }) => {
        throw new Error(message);
      },
    });
    await server.start();
    // The caller has no definition (so no local validation): the worker validates and refuses.
    const client = makeBus([], broker, { validate: { outgoing: false } });
    const error = await client.api('my_company.auth').call('check_password', { username: 1 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.REMOTE_ERROR, remoteCode: ErrorCodes.VALIDATION_FAILED });
    const plain = await client.api('my_company.auth').call('fail', { message: 'x' }, { timeout: 2 }).catch((e: unknown) => e);
    expect(plain).toMatchObject({ code: ErrorCodes.REMOTE_ERROR, remoteError: "Error('x')", remoteCode: undefined });
  });
});
