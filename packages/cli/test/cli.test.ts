/**
 * The real command, run as a subprocess (node dist/bin.js ...), with the in-memory transports.
 */
import { readFileSync, rmSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, childEnv, emptyDir, FIXTURES, runCli, startCli } from './helpers.js';

const AUTH = join(FIXTURES, 'auth_service');
const temp: string[] = [];
afterAll(() => temp.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = emptyDir();
  temp.push(d);
  return d;
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('lightbus --help', () => {
  it.each(['run', 'dumpschema', 'dumpconfigschema', 'inspect', 'shell', 'codegen'])('%s --help shows options and examples', async (command) => {
    const { code, stdout } = await runCli([command, '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain(`Usage: lightbus ${command}`);
    expect(stdout).toContain('Examples:');
  });
});

describe('lightbus run: refusing to start', () => {
  it('names the paths it tried when there is no bus module', async () => {
    const dir = tempDir();
    const { code, stderr } = await runCli(['run'], { cwd: dir });
    expect(code).toBe(1);
    expect(stderr).toContain(join(dir, 'bus.ts'));
    expect(stderr).toContain(join(dir, 'bus.js'));
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('names the module given with --bus or LIGHTBUS_MODULE', async () => {
    const dir = tempDir();
    const viaFlag = await runCli(['run', '--bus', 'src/missing.ts'], { cwd: dir });
    expect(viaFlag.code).toBe(1);
    expect(viaFlag.stderr).toContain(`${join(dir, 'src', 'missing.ts')}`);
    expect(viaFlag.stderr).toContain('--bus');
    const viaEnv = await runCli(['run'], { cwd: dir, env: { LIGHTBUS_MODULE: 'other.ts' } });
    expect(viaEnv.code).toBe(1);
    expect(viaEnv.stderr).toContain(join(dir, 'other.ts'));
    expect(viaEnv.stderr).toContain('LIGHTBUS_MODULE');
  });

  it('says so when the module exports no bus', async () => {
    const { code, stderr } = await runCli(['run'], { cwd: join(FIXTURES, 'no_bus') });
    expect(code).toBe(1);
    expect(stderr).toContain('does not export a bus');
    expect(stderr).toContain('somethingElse');
  });

  it('names each bad key of a broken config, without a stack trace', async () => {
    const dir = join(FIXTURES, 'bad_config');
    const { code, stderr } = await runCli(['run', '--config', 'lightbus.yaml'], { cwd: dir });
    expect(code).toBe(1);
    expect(stderr).toContain('apis.default.rpc_timout');
    expect(stderr).toContain('apis.default.event_transport');
    expect(stderr).toContain('LB_CONFIG_INVALID');
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('prints the failure as one JSON line with --json-logs', async () => {
    const dir = join(FIXTURES, 'bad_config');
    const { code, stderr } = await runCli(['run', '--config', 'lightbus.yaml', '--json-logs'], { cwd: dir });
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'error', code: 'LB_CONFIG_INVALID', msg: expect.stringContaining('apis.default.rpc_timout') as unknown });
  });

  it('prints the stack trace of a failing module only with --log-level debug', async () => {
    const dir = join(FIXTURES, 'broken_module');
    const plain = await runCli(['run'], { cwd: dir });
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain('database URL missing');
    expect(plain.stderr).not.toMatch(/\n\s+at /);
    const debug = await runCli(['run', '--log-level', 'debug'], { cwd: dir });
    expect(debug.code).toBe(1);
    expect(debug.stderr).toMatch(/\n\s+at .*bus\.ts/);
  });

  it('rejects unknown parts in --only / --skip with exit code 2', async () => {
    const { code, stderr } = await runCli(['run', '--only', 'rpcs,cron'], { cwd: AUTH });
    expect(code).toBe(2);
    expect(stderr).toContain('"cron"');
    const both = await runCli(['run', '--only', 'rpcs', '--skip', 'tasks'], { cwd: AUTH });
    expect(both.code).toBe(2);
    const unknown = await runCli(['run', '--no-such-flag'], { cwd: AUTH });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--no-such-flag'");
  });
});

describe('lightbus run', () => {
  it('prints the summary, reports readiness, and exits 0 on SIGTERM', async () => {
    const p = startCli(['run', '--service-name', 'auth_service', '--process-name', 'auth_1', '--health-port', '0', '--health-host', '127.0.0.1'], {
      cwd: AUTH,
    });
    await p.waitFor('Worker running');
    const err = p.stderr();
    expect(err).toContain('service name: auth_service');
    expect(err).toContain('process name: auth_1');
    expect(err).toContain('APIs served: auth');
    expect(err).toContain('refreshCache: every 3600 s');
    expect(err).toMatch(/auth\s+memory\s+memory\s+memory\s+memory/);
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(err)![1]);
    expect(await get(port, '/healthz')).toMatchObject({ status: 200 });
    expect(await get(port, '/readyz')).toMatchObject({ status: 200 });
    p.child.kill('SIGTERM');
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(p.stderr()).toContain('Worker stopped');
  });

  it('runs a plain JavaScript bus module with a default export', async () => {
    const p = startCli(['run', '--bus', join(FIXTURES, 'js_service')], { cwd: tempDir() });
    await p.waitFor('Worker running');
    expect(p.stderr()).toContain(join(FIXTURES, 'js_service', 'bus.js'));
    expect(p.stderr()).toContain('APIs served: math');
    p.child.kill('SIGTERM');
    expect((await p.exited).code).toBe(0);
  });

  it('--only rpcs leaves listeners and tasks off; --json-logs prints JSON lines only', async () => {
    const p = startCli(['run', '--only', 'rpcs', '--json-logs', '--service-name', 'svc'], { cwd: AUTH });
    await p.waitFor('Worker running');
    p.child.kill('SIGINT');
    expect((await p.exited).code).toBe(0);
    const lines = p.stderr().trim().split('\n');
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const started = records.find((r) => r['msg'] === 'Lightbus worker started')!;
    expect(started).toMatchObject({ serviceName: 'svc', registeredApis: ['auth'], parts: { rpcs: true, events: false, tasks: false } });
  });

  it('waits for a handler in flight on SIGTERM up to --shutdown-timeout, and a second signal exits at once', async () => {
    const dir = join(FIXTURES, 'slow_task');
    const p = startCli(['run', '--shutdown-timeout', '30000', '--health-port', '0', '--health-host', '127.0.0.1'], { cwd: dir });
    await p.waitFor('TASK STARTED');
    await p.waitFor('Worker running');
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(p.stderr())![1]);
    p.child.kill('SIGTERM');
    await p.waitFor('stopping gracefully');
    expect(await get(port, '/readyz')).toMatchObject({ status: 503 });
    expect(p.child.exitCode).toBeNull();
    p.child.kill('SIGTERM');
    expect((await p.exited).code).toBe(143);

    const q = startCli(['run', '--shutdown-timeout', '200'], { cwd: dir });
    await q.waitFor('Worker running');
    await q.waitFor('TASK STARTED');
    q.child.kill('SIGINT');
    expect((await q.exited).code).toBe(0);
    expect(q.stderr()).toContain('still running after 200 ms');
    expect(q.stdout()).not.toContain('TASK FINISHED');
  });
});

describe('lightbus dumpschema / dumpconfigschema', () => {
  it('dumps every API schema as one document, to stdout, a file, or a folder', async () => {
    const { code, stdout } = await runCli(['dumpschema'], { cwd: AUTH });
    expect(code).toBe(0);
    const schemas = JSON.parse(stdout) as Record<string, { rpcs: Record<string, unknown>; events: Record<string, unknown> }>;
    expect(Object.keys(schemas)).toEqual(['auth']);
    expect(schemas['auth']!.rpcs['check_password']).toMatchObject({ response: { type: 'boolean' } });
    expect(Object.keys(schemas['auth']!.events)).toEqual(['user_registered']);

    const dir = tempDir();
    expect((await runCli(['dumpschema', '--out', join(dir, 'schema.json')], { cwd: AUTH })).code).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'schema.json'), 'utf8'))).toEqual(schemas);
    expect((await runCli(['dumpschema', '--out', join(dir, 'per-api') + '/'], { cwd: AUTH })).code).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'per-api', 'auth.json'), 'utf8'))).toEqual(schemas['auth']);
  });

  it('dumps the configuration schema with the memory transport options', async () => {
    const { code, stdout } = await runCli(['dumpconfigschema'], { cwd: tempDir() });
    expect(code).toBe(0);
    const schema = JSON.parse(stdout) as { title: string; properties: { apis: { additionalProperties: { properties: Record<string, { properties?: Record<string, unknown> }> } } } };
    expect(schema.title).toBe('Lightbus configuration');
    const eventTransport = schema.properties.apis.additionalProperties.properties['event_transport']!;
    expect(Object.keys(eventTransport.properties ?? {})).toContain('memory');
    // @lightbus/redis is installed next to the CLI here (a dev dependency): its options are in.
    const redis = (eventTransport.properties ?? {})['redis'] as { properties?: Record<string, unknown> } | undefined;
    expect(redis?.properties).toHaveProperty('url');
  });
});

describe('lightbus codegen', () => {
  it('generates definitions from a schema dump and from the bus module', async () => {
    const dir = tempDir();
    await runCli(['dumpschema', '--out', join(dir, 'schema.json')], { cwd: AUTH });
    const fromFile = await runCli(['codegen', '--schema', join(dir, 'schema.json'), '--out', join(dir, 'apis.ts')], { cwd: dir });
    expect(fromFile.code).toBe(0);
    const code = readFileSync(join(dir, 'apis.ts'), 'utf8');
    expect(code).toContain('export const authApi = defineApi({');
    expect(code).toContain('checkPassword: rpc({');
    expect(code).toContain('name: "check_password"');
    const fromBus = await runCli(['codegen'], { cwd: AUTH });
    expect(fromBus.code).toBe(0);
    expect(fromBus.stdout).toContain('userRegistered: event({');
    const unknown = await runCli(['codegen', '--schema', join(dir, 'schema.json'), '--api', 'billing'], { cwd: dir });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('No schema for API billing');
  });
});

describe('lightbus inspect', () => {
  const cwd = join(FIXTURES, 'events_service');

  it('lists events newest first, for the one API the module registers', async () => {
    const { code, stdout } = await runCli(['inspect', '--format', 'json'], { cwd });
    expect(code).toBe(0);
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; parameters: { username: string }; id: string });
    expect(events.map((e) => `${e.event}:${e.parameters.username}`)).toEqual([
      'user_deleted:bob',
      'user_registered:cid',
      'user_registered:bob',
      'user_registered:ann',
    ]);
  });

  it('filters by event wildcard, field, id and limit', async () => {
    const json = async (...args: string[]) =>
      (await runCli(['inspect', '--api', 'accounts', '--format', 'json', ...args], { cwd })).stdout
        .trim()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { event: string; id: string; parameters: { username: string } });
    expect((await json('--event', 'user_reg*')).map((e) => e.parameters.username)).toEqual(['cid', 'bob', 'ann']);
    expect((await json('--field', 'username=bob')).map((e) => e.event)).toEqual(['user_deleted', 'user_registered']);
    expect((await json('--field', 'profile.country=fr', '--limit', '1')).map((e) => e.parameters.username)).toEqual(['cid']);
    expect(await json('--id', 'no-such-id')).toEqual([]);
    expect((await json('--since', '1d')).length).toBe(4);
    expect(await json('--until', '2000-01-01T00:00:00Z')).toEqual([]);
  });

  it('prints readable entries by default', async () => {
    const { code, stdout } = await runCli(['inspect', '--event', 'user_deleted'], { cwd });
    expect(code).toBe(0);
    expect(stdout).toMatch(/accounts\.user_deleted {2}id=\S+ {2}position=\d+/);
    expect(stdout).toContain('"username": "bob"');
  });

  it('--follow prints the latest events, then new ones in order, until SIGINT', async () => {
    const p = startCli(['inspect', '--follow', '--interval', '100', '--limit', '2', '--format', 'json'], { cwd: join(FIXTURES, 'ticking_service') });
    const ticks = () =>
      p
        .stdout()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => (JSON.parse(l) as { parameters: { n: number } }).parameters.n);
    await p.waitFor(/"n":8\b/);
    p.child.kill('SIGINT');
    expect((await p.exited).code).toBe(0);
    const seen = ticks();
    // Oldest first, no gaps, no repeats: the two latest at start (1, 2), then every new tick.
    expect(seen.slice(0, 2)).toEqual([1, 2]);
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => i + 1));
  });

  it('asks for --api when it cannot tell which API', async () => {
    const { code, stderr } = await runCli(['inspect'], { cwd: join(FIXTURES, 'another_service') });
    expect(code).toBe(2);
    expect(stderr).toContain('--api');
  });
});

const hasScript = spawnSync('script', ['--version']).status === 0;

describe('lightbus shell', () => {
  it.skipIf(!hasScript)('opens a REPL on a terminal, with top-level await (through script(1) for a pseudo-terminal)', async () => {
    const child = spawn('script', ['-qc', `${process.execPath} ${BIN} shell`, '/dev/null'], { cwd: AUTH, env: childEnv() });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const until = async (text: string) => {
      for (let i = 0; i < 200 && !out.includes(text); i++) await new Promise((r) => setTimeout(r, 50));
      expect(out).toContain(text);
    };
    await until('lightbus> ');
    child.stdin.write("const names = Object.keys(await bus.schemas()); 'NAMES=' + names.join('+')\n");
    await until('NAMES=auth');
    child.stdin.write('.exit\n');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
  });


  it('evaluates input with `bus` in scope and top-level await', async () => {
    const input = "const names = Object.keys(await bus.schemas())\nconsole.log('APIS=' + names.join(','))\n";
    const dir = tempDir();
    const { code, stdout } = await runCli(['shell', '--bus', join(AUTH, 'bus.ts')], { cwd: dir, input });
    expect(code).toBe(0);
    expect(stdout).toContain('APIS=auth');
  });
});
