/**
 * End to end with core's createBus: one bus serves an API and fires its events over Redis, a
 * second bus (another process, as far as Redis can tell) calls, listens and reads the schema.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createBus, defineApi, event, rpc, silentLogger, ErrorCodes, Type } from '@lightbus/core';
import { eventually } from '@lightbus/transport-test-suite';
import { transportPlugin, redisTransports } from '../src/index.js';
import { REDIS_URL, cleanupKeys, rawRedis } from './helpers.js';

const id = randomBytes(5).toString('hex');
const apiName = `lbtest_${id}.auth`;
const authApi = defineApi({
  name: apiName,
  events: { userRegistered: event({ parameters: { username: Type.String(), email: Type.String() } }) },
  rpcs: {
    checkPassword: rpc({ parameters: { username: Type.String(), password: Type.String() }, response: Type.Boolean() }),
    fail: rpc({ parameters: { message: Type.String() } }),
  },
});

const redis = { redis: { url: REDIS_URL, acknowledgement_timeout: 1 } };
const config = {
  service_name: `svc_${id}`,
  bus: { schema: { transport: redis } },
  apis: { default: { rpc_transport: redis, result_transport: redis, event_transport: redis, rpc_timeout: 2, retry_delay: 0.05 } },
};

const buses: Array<{ close(options: { timeoutMs: number }): Promise<void> }> = [];
afterEach(async () => {
  for (const b of buses.splice(0)) await b.close({ timeoutMs: 2000 });
});
afterAll(async () => {
  await cleanupKeys(id);
  await rawRedis().quit();
});

describe('createBus over Redis', () => {
  it('delivers events fired as soon as start() resolved to a listener group that start() created', async () => {
    const server = createBus({ apis: [], config, logger: silentLogger, processName: 'firer', transports: [transportPlugin] });
    buses.push(server);
    server.registerApi(authApi, { checkPassword: () => true, fail: () => undefined });
    const listener = createBus({ apis: [authApi], config: { ...config, service_name: `fresh_${id}` }, logger: silentLogger, processName: 'fresh', transports: [transportPlugin] });
    buses.push(listener);
    const seen: string[] = [];
    listener.api(apiName).listen(['user_registered'], ({ username }) => void seen.push(username as string), { listenerName: 'fresh' });
    // The firing side is connected already, so its fires below go out at once.
    await server.api(apiName).fire('user_registered', { username: 'before the group', email: 'e@x' });
    await listener.start();
    // No pause: the group must already exist, or these would go to nobody ("new" starts after them).
    await Promise.all(Array.from({ length: 50 }, (_, i) => server.api(apiName).fire('user_registered', { username: `u${i}`, email: 'e@x' })));
    await eventually(() => seen.length === 50, 5000, 'all 50 events');
    expect(new Set(seen).size).toBe(50);
    expect(seen).not.toContain('before the group');
  });

  it('serves RPCs, delivers events and shares the schema between two processes', async () => {
    expect(redisTransports).toBe(transportPlugin);
    const server = createBus({ apis: [], config, logger: silentLogger, processName: 'server', transports: [transportPlugin] });
    buses.push(server);
    server.registerApi(authApi, {
      checkPassword: ({ username, password }) => username === 'admin' && password === 'secret',
      fail: ({ message }) => {
        throw new Error(message);
      },
    });
    await server.start();

    const client = createBus({ apis: [authApi], config: { ...config, service_name: `listener_${id}` }, logger: silentLogger, processName: 'client', transports: [transportPlugin] });
    buses.push(client);
    const seen: string[] = [];
    client.api(apiName).listen(['user_registered'], ({ username }) => void seen.push(username as string), { listenerName: 'welcome' });
    await client.start();
    await new Promise((r) => setTimeout(r, 300));

    await expect(client.api(apiName).call('check_password', { username: 'admin', password: 'secret' })).resolves.toBe(true);
    await expect(client.api(apiName).call('check_password', { username: 'admin', password: 'nope' })).resolves.toBe(false);
    await expect(client.api(apiName).call('fail', { message: 'boom' })).rejects.toMatchObject({ code: ErrorCodes.REMOTE_ERROR, remoteError: "Error('boom')" });

    await server.api(apiName).fire('user_registered', { username: 'alice', email: 'alice@example.com' });
    await eventually(() => seen.length === 1, 5000, 'the event');
    expect(seen).toEqual(['alice']);

    // The schema is in Redis in the Python shape.
    const stored = JSON.parse((await rawRedis().get(`schema:${apiName}`))!) as { rpcs: Record<string, unknown>; events: Record<string, unknown> };
    expect(Object.keys(stored.rpcs).sort()).toEqual(['check_password', 'fail']);
    expect(Object.keys(stored.events)).toEqual(['user_registered']);
    expect(await rawRedis().sismember('schemas', apiName)).toBe(1);
  });
});
