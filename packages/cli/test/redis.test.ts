/**
 * The seed tutorial end to end over the real Redis (database 9), with `lightbus run` as real
 * subprocesses: auth_service serves check_password and owns user_registered, another_service
 * listens. Skipped, saying why, when @lightbus/redis is not installed or Redis is not reachable.
 * Each test uses its own API name and deletes its keys; nothing is flushed.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBus, defineApi, event, rpc, Type, type TransportPlugin } from '@lightbus/core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyDir, FIXTURES, runCli, startCli, type CliProcess } from './helpers.js';

const REDIS_URL = 'redis://127.0.0.1:6379/9';
const redisPackage = join(import.meta.dirname, '..', 'node_modules', '@lightbus', 'redis', 'dist', 'index.js');
const hasRedisPackage = existsSync(redisPackage);

async function redisReachable(): Promise<boolean> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

const reachable = hasRedisPackage ? await redisReachable() : false;
if (!hasRedisPackage) console.warn('[skip] redis.test.ts: @lightbus/redis is not installed (build packages/redis); the Redis end-to-end tests are skipped.');
else if (!reachable) console.warn(`[skip] redis.test.ts: Redis is not reachable at ${REDIS_URL}; the Redis end-to-end tests are skipped.`);

const AUTH = join(FIXTURES, 'auth_service');
const ANOTHER = join(FIXTURES, 'another_service');

describe.skipIf(!hasRedisPackage || !reachable)('the two-service tutorial over Redis', () => {
  const id = `${process.pid}_${Date.now().toString(36)}`;
  const dir = emptyDir();
  const config = join(dir, 'lightbus.yaml');
  const running: CliProcess[] = [];
  let redis: Redis;
  let plugin: TransportPlugin<never>;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    plugin = ((await import('@lightbus/redis')) as { transportPlugin: TransportPlugin<never> }).transportPlugin;
    const transport = `{ redis: { url: "${REDIS_URL}", acknowledgement_timeout: 2, block_timeout_ms: 200 } }`;
    writeFileSync(
      config,
      `bus:\n  schema:\n    transport: ${transport}\napis:\n  default:\n    rpc_transport: ${transport}\n    result_transport: ${transport}\n    event_transport: ${transport}\n`,
    );
  });

  afterAll(async () => {
    for (const p of running) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    // Delete every key this file wrote (their names contain the test id), and our schema names.
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `*lbcli_${id}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
    const names = (await redis.smembers('schemas')).filter((n) => n.includes(`lbcli_${id}`));
    if (names.length > 0) await redis.srem('schemas', ...names);
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  function authApiNamed(name: string) {
    return defineApi({
      name,
      events: { userRegistered: event({ parameters: { username: Type.String(), email: Type.String() } }) },
      rpcs: { checkPassword: rpc({ parameters: { username: Type.String(), password: Type.String() }, response: Type.Boolean() }) },
    });
  }

  function start(cwd: string, apiName: string, args: string[], env: Record<string, string> = {}): CliProcess {
    const p = startCli(['run', '--config', config, ...args], { cwd, env: { LB_TEST_REDIS: '1', LB_TEST_API: apiName, ...env } });
    running.push(p);
    return p;
  }

  function handled(p: CliProcess): Array<{ id: string; username: string }> {
    return p
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('HANDLED '))
      .map((l) => JSON.parse(l.slice('HANDLED '.length)) as { id: string; username: string });
  }

  async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('auth_service serves check_password and fires user_registered; another_service hears each event once', async () => {
    const apiName = `lbcli_${id}_auth`;
    const auth = start(AUTH, apiName, ['--service-name', `lbcli_${id}_auth_service`]);
    const another = start(ANOTHER, apiName, ['--service-name', `lbcli_${id}_another_service`]);
    await Promise.all([auth.waitFor('Worker running'), another.waitFor('Worker running')]);
    expect(auth.stderr()).toMatch(new RegExp(`${apiName}\\s+redis\\s+redis\\s+redis\\s+redis`));
    expect(another.stderr()).toContain(`print_on_new_registration: ${apiName}.user_registered`);
    expect(another.stderr()).toContain(`config:       ${config}`);

    // check_password.ts / manually_register_user.ts of the tutorial, as a client process.
    const api = authApiNamed(apiName);
    const client = createBus({ apis: [api], config, transports: [plugin], serviceName: `lbcli_${id}_scripts` });
    try {
      expect(await client.call(apiName, 'check_password', { username: 'admin', password: 'secret' })).toBe(true);
      expect(await client.call(apiName, 'check_password', { username: 'admin', password: 'nope' })).toBe(false);
      client.registerApi(api, { checkPassword: () => false }); // as the tutorial's script does: it fires, it serves nothing
      for (const username of ['ann', 'bob', 'cid']) await client.fire(apiName, 'user_registered', { username, email: `${username}@example.com` });
    } finally {
      await client.close();
    }
    await until(() => handled(another).length >= 3, 'another_service to handle 3 events');
    expect(handled(another).map((e) => e.username)).toEqual(['ann', 'bob', 'cid']);

    // The other commands against the same bus, from the service that does not own the API.
    const inspected = await runCli(['inspect', '--config', config, '--api', apiName, '--format', 'json'], { cwd: ANOTHER, env: { LB_TEST_REDIS: '1', LB_TEST_API: apiName } });
    expect(inspected.code).toBe(0);
    expect(inspected.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { parameters: { username: string } }).parameters.username)).toEqual(['cid', 'bob', 'ann']);
    const dumped = await runCli(['dumpschema', '--config', config], { cwd: ANOTHER, env: { LB_TEST_REDIS: '1', LB_TEST_API: apiName } });
    expect(dumped.code).toBe(0);
    expect(JSON.parse(dumped.stdout)).toHaveProperty([apiName, 'rpcs', 'check_password']);
    const generated = await runCli(['codegen', '--config', config, '--api', apiName], { cwd: ANOTHER, env: { LB_TEST_REDIS: '1', LB_TEST_API: apiName } });
    expect(generated.code).toBe(0);
    expect(generated.stdout).toContain('checkPassword: rpc({');

    // The tutorial's check_password script, typed into `lightbus shell` in another_service.
    const shell = await runCli(['shell', '--config', config], {
      cwd: ANOTHER,
      env: { LB_TEST_REDIS: '1', LB_TEST_API: apiName },
      input: `const valid = await bus.api('${apiName}').call('check_password', { username: 'admin', password: 'secret' });\nconsole.log(valid ? 'Password valid!' : 'Oops, bad username or password');\n`,
    });
    expect(shell.code).toBe(0);
    expect(shell.stdout).toContain('Password valid!');

    auth.child.kill('SIGTERM');
    another.child.kill('SIGTERM');
    expect((await auth.exited).code).toBe(0);
    expect((await another.exited).code).toBe(0);
  });

  it('SIGTERM with handlers in flight loses and duplicates nothing', async () => {
    const apiName = `lbcli_${id}_shutdown`;
    const args = ['--service-name', `lbcli_${id}_listener`, '--process-name', 'listener_1', '--shutdown-timeout', '10000'];
    const env = { LB_TEST_HANDLER_DELAY_MS: '150' };
    const first = start(ANOTHER, apiName, args, env);
    await first.waitFor('Worker running');

    const api = authApiNamed(apiName);
    const client = createBus({ apis: [api], config, transports: [plugin], serviceName: `lbcli_${id}_scripts` });
    const count = 20;
    try {
      client.registerApi(api, { checkPassword: () => false }); // as the tutorial's script does: it fires, it serves nothing
      for (let i = 0; i < count; i++) await client.fire(apiName, 'user_registered', { username: `user${i}`, email: `u${i}@example.com` });
    } finally {
      await client.close();
    }
    await until(() => handled(first).length >= 3, 'the first worker to handle 3 events');
    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
    const before = handled(first);
    expect(before.length).toBeLessThan(count);

    // The same process again picks up what the first one had read but not handled.
    const second = start(ANOTHER, apiName, args, env);
    await until(() => before.length + handled(second).length >= count, 'all events to be handled', 30_000);
    await new Promise((r) => setTimeout(r, 500)); // room for a duplicate to show up
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);

    const all = [...before, ...handled(second)];
    expect(all.map((e) => e.username).sort()).toEqual(Array.from({ length: count }, (_, i) => `user${i}`).sort());
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
  }, 60_000);

  it('codegen types an API published by a Python service, with no bus module', async () => {
    const apiName = `lbcli_${id}_py.auth`;
    const params = (title: string, properties: Record<string, unknown>, required: string[]) => ({
      $schema: 'http://json-schema.org/draft-07/schema#',
      additionalProperties: false,
      properties,
      required,
      title,
      type: 'object',
    });
    // As Python Lightbus stores it (see the recorded traffic): untyped parameters are {}.
    const pythonSchema = {
      events: { user_registered: { parameters: params(`Event ${apiName}.user_registered parameters`, { username: { type: 'string' }, email: {} }, ['username', 'email']) } },
      rpcs: {
        check_password: {
          parameters: params(`RPC ${apiName}.check_password() parameters`, { username: { type: 'string' }, password: { type: 'string' } }, ['username', 'password']),
          response: { $schema: 'http://json-schema.org/draft-07/schema#', title: `RPC ${apiName}.check_password() response`, type: 'boolean' },
        },
      },
    };
    await redis.multi().set(`schema:${apiName}`, JSON.stringify(pythonSchema)).expire(`schema:${apiName}`, 60).sadd('schemas', apiName).exec();
    const outDir = join(import.meta.dirname, '..', '.tmp', `redis-codegen-${id}`);
    try {
      const result = await runCli(['codegen', '--config', config, '--api', apiName, '--out', join(outDir, 'apis.ts')], { cwd: dir });
      expect(result.code).toBe(0);
      const mod = (await import(join(outDir, 'apis.ts'))) as Record<string, { name: string; schema: unknown }>;
      const api = Object.values(mod).find((v) => !Array.isArray(v) && v.name === apiName)!;
      expect(api.schema).toEqual(pythonSchema);
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  });

  it('inspect --follow shows events fired by another process as they arrive', async () => {
    const apiName = `lbcli_${id}_follow`;
    const api = authApiNamed(apiName);
    const client = createBus({ apis: [api], config, transports: [plugin], serviceName: `lbcli_${id}_scripts` });
    try {
      client.registerApi(api, { checkPassword: () => false });
      await client.fire(apiName, 'user_registered', { username: 'before', email: 'b@example.com' });
      const follow = startCli(['inspect', '--config', config, '--api', apiName, '--follow', '--interval', '100', '--format', 'json'], { cwd: dir });
      running.push(follow);
      await follow.waitFor('"before"');
      for (const username of ['one', 'two']) await client.fire(apiName, 'user_registered', { username, email: `${username}@example.com` });
      await follow.waitFor('"two"');
      follow.child.kill('SIGINT');
      expect((await follow.exited).code).toBe(0);
      const names = follow.stdout().trim().split('\n').map((l) => (JSON.parse(l) as { parameters: { username: string } }).parameters.username);
      expect(names).toEqual(['before', 'one', 'two']);
    } finally {
      await client.close();
    }
  });

  it('exits 1 with a clear message when the broker is unreachable', async () => {
    const bad = join(dir, 'unreachable.yaml');
    const transport = '{ redis: { url: "redis://127.0.0.1:1/9" } }';
    writeFileSync(bad, `bus:\n  schema:\n    transport: ${transport}\napis:\n  default:\n    rpc_transport: ${transport}\n    result_transport: ${transport}\n    event_transport: ${transport}\n`);
    const { code, stderr } = await runCli(['run', '--config', bad, '--start-timeout', '5'], { cwd: AUTH, env: { LB_TEST_REDIS: '1', LB_TEST_API: `lbcli_${id}_down` } });
    expect(code).toBe(1);
    expect(stderr).toContain('lightbus run: cannot start');
    expect(stderr).toMatch(/127\.0\.0\.1:1|reachable|ECONNREFUSED/);
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
