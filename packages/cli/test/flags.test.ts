import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigurationError, createBus } from '@lightbus/core';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError, formatFatal } from '../src/errors.js';
import { eventFilter, globToRegExp, parseFieldFilter, parseTime } from '../src/commands/inspect.js';
import { workerParts } from '../src/commands/run.js';
import { applyEnvironment, busFromModule, findBusModule, isBus, moduleCandidates } from '../src/load-bus.js';
import { emptyDir } from './helpers.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('--only / --skip', () => {
  it('runs everything by default', () => {
    expect(workerParts(undefined, undefined)).toEqual({ rpcs: true, events: true, tasks: true });
  });
  it('--only keeps the named parts, --skip drops them', () => {
    expect(workerParts('rpcs, events', undefined)).toEqual({ rpcs: true, events: true, tasks: false });
    expect(workerParts(undefined, 'tasks')).toEqual({ rpcs: true, events: true, tasks: false });
  });
  it('rejects unknown parts, empty lists and both flags at once with exit code 2', () => {
    for (const [only, skip] of [['cron', undefined], [undefined, ''], ['rpcs', 'tasks']] as const) {
      let error: unknown;
      try {
        workerParts(only, skip);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CliError);
      expect((error as CliError).exitCode).toBe(2);
    }
  });
});

describe('environment from flags', () => {
  it('sets the LIGHTBUS_* variables core reads, with an absolute config path', () => {
    const env: NodeJS.ProcessEnv = { LIGHTBUS_SERVICE_NAME: 'old' };
    applyEnvironment({ config: 'conf/lightbus.yaml', serviceName: 'auth', processName: 'auth_1', logLevel: 'debug', jsonLogs: true }, env, '/srv/app');
    expect(env).toEqual({
      LIGHTBUS_CONFIG: '/srv/app/conf/lightbus.yaml',
      LIGHTBUS_SERVICE_NAME: 'auth',
      LIGHTBUS_PROCESS_NAME: 'auth_1',
      LIGHTBUS_LOG_LEVEL: 'debug',
      LIGHTBUS_LOG_FORMAT: 'json',
    });
  });
  it('leaves variables alone when their flag is not given', () => {
    const env: NodeJS.ProcessEnv = { LIGHTBUS_SERVICE_NAME: 'from-env' };
    applyEnvironment({}, env, '/srv/app');
    expect(env).toEqual({ LIGHTBUS_SERVICE_NAME: 'from-env' });
  });
});

describe('finding the bus module', () => {
  it('tries bus.ts then bus.js in the folder, or the module named by --bus / LIGHTBUS_MODULE', () => {
    expect(moduleCandidates(undefined, {}, '/srv/app')).toEqual({ paths: ['/srv/app/bus.ts', '/srv/app/bus.js'], source: 'default' });
    expect(moduleCandidates('src/bus.ts', { LIGHTBUS_MODULE: 'x.ts' }, '/srv/app')).toEqual({ paths: ['/srv/app/src/bus.ts'], source: '--bus' });
    expect(moduleCandidates(undefined, { LIGHTBUS_MODULE: 'x.ts' }, '/srv/app')).toEqual({ paths: ['/srv/app/x.ts'], source: 'LIGHTBUS_MODULE' });
  });
  it('treats a folder as bus.ts / bus.js inside it and prefers bus.ts', () => {
    const dir = emptyDir();
    dirs.push(dir);
    mkdirSync(join(dir, 'svc'));
    writeFileSync(join(dir, 'svc', 'bus.js'), '');
    expect(findBusModule('svc', {}, dir)).toBe(join(dir, 'svc', 'bus.js'));
    writeFileSync(join(dir, 'svc', 'bus.ts'), '');
    expect(findBusModule('svc', {}, dir)).toBe(join(dir, 'svc', 'bus.ts'));
    expect(() => findBusModule(undefined, {}, dir)).toThrow(`Tried: ${join(dir, 'bus.ts')}, ${join(dir, 'bus.js')}`);
  });
});

describe('the bus export', () => {
  const bus = createBus();
  afterAll(() => bus.close());
  it('recognises a bus (a Proxy whose unknown properties are API paths) and nothing else', () => {
    expect(isBus(bus)).toBe(true);
    expect(isBus((bus as unknown as Record<string, unknown>)['auth'])).toBe(false);
    expect(isBus({ start() {} })).toBe(false);
  });
  it('takes the named export, the default export, or default.bus', () => {
    expect(busFromModule({ bus }, 'm')).toBe(bus);
    expect(busFromModule({ default: bus }, 'm')).toBe(bus);
    expect(busFromModule({ default: { bus } }, 'm')).toBe(bus);
    expect(() => busFromModule({ api: 1 }, 'm.ts')).toThrow('The module m.ts does not export a bus. It exports: api.');
  });
});

describe('inspect filters', () => {
  const message = { id: 'm1', apiName: 'auth', eventName: 'user_registered', version: 1, kwargs: { username: 'ann', age: 31, address: { city: 'Lyon' } } };
  it('matches event names with wildcards', () => {
    expect(globToRegExp('user_*').test('user_registered')).toBe(true);
    expect(globToRegExp('user_*').test('admin_user_x')).toBe(false);
    expect(globToRegExp('user.?').test('user_x')).toBe(false);
  });
  it('matches parameters by value, JSON value, dotted path and wildcard', () => {
    expect(eventFilter({ field: ['username=ann'] })(message)).toBe(true);
    expect(eventFilter({ field: ['age=31'] })(message)).toBe(true);
    expect(eventFilter({ field: ['address.city=Ly*'] })(message)).toBe(true);
    expect(eventFilter({ field: ['username=bob'] })(message)).toBe(false);
    expect(eventFilter({ field: ['missing=x'] })(message)).toBe(false);
    expect(eventFilter({ event: 'user_*', id: 'm1' })(message)).toBe(true);
    expect(eventFilter({ id: 'm2' })(message)).toBe(false);
  });
  it('reads --since / --until as ISO dates or durations back from now', () => {
    const now = Date.parse('2026-11-21T12:00:00Z');
    expect(parseTime('10m', '--since', now).toISOString()).toBe('2026-11-21T11:50:00.000Z');
    expect(parseTime('1d', '--since', now).toISOString()).toBe('2026-11-20T12:00:00.000Z');
    expect(parseTime('2026-11-21T06:00:00Z', '--until', now).toISOString()).toBe('2026-11-21T06:00:00.000Z');
    expect(() => parseTime('yesterday', '--since', now)).toThrow(CliError);
  });

  it('rejects a --field without =', () => {
    expect(() => parseFieldFilter('username')).toThrow(CliError);
  });
});

describe('fatal messages', () => {
  it('print a Lightbus error with its code and no stack, unless debug', () => {
    const error = new ConfigurationError('Invalid configuration:\n  - apis.default.rpc_timout: is not a known option');
    const text = formatFatal(error, { prefix: 'lightbus run: cannot start' });
    expect(text).toBe('lightbus run: cannot start: Invalid configuration:\n  - apis.default.rpc_timout: is not a known option [LB_CONFIG_INVALID]');
    expect(formatFatal(error, { prefix: 'x', debug: true })).toMatch(/\n\s+at /);
  });
  it('mask passwords in URLs', () => {
    const text = formatFatal(new Error('cannot reach redis://user:hunter2@db:6379'), { prefix: 'x' });
    expect(text).not.toContain('hunter2');
  });
});
