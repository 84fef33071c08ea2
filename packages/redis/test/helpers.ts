import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { eventually } from '@lightbus/transport-test-suite';
import { Redis } from 'ioredis';
import { decodeEventFields, deadLetterKey } from '../src/index.js';
import type { EventMessage, Logger } from '@lightbus/core';

/** Database 9 keeps our keys away from everyone else's. */
export const REDIS_URL = process.env['LIGHTBUS_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379/9';

let raw: Redis | undefined;

/** A raw client for the back door (never through the transport under test). */
export function rawRedis(): Redis {
  raw ??= new Redis(REDIS_URL, { lazyConnect: false });
  return raw;
}

/** Deletes every key a test wrote: keys containing the test id, and its names in `schemas`. */
export async function cleanupKeys(id: string): Promise<void> {
  const r = rawRedis();
  let cursor = '0';
  const keys: string[] = [];
  do {
    const [next, found] = await r.scan(cursor, 'MATCH', `*${id}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  if (keys.length > 0) await r.del(...keys);
  const members = (await r.smembers('schemas')).filter((m) => m.includes(id));
  if (members.length > 0) await r.srem('schemas', ...members);
}

/** Reads a stream's entries as [id, fields] pairs. */
export async function xrange(stream: string): Promise<Array<[string, string[]]>> {
  return (await rawRedis().xrange(stream, '-', '+'));
}

/** The events stored in a stream (no-op entries excluded). */
export async function storedEvents(stream: string): Promise<EventMessage[]> {
  const out: EventMessage[] = [];
  for (const [, fields] of await xrange(stream)) {
    const d = decodeEventFields(fields);
    if (d.kind === 'event') out.push(d.message);
  }
  return out;
}

/** The dead-letter entries of a stream, as field maps. */
export async function deadLetters(stream: string): Promise<Array<Record<string, string>>> {
  return (await xrange(deadLetterKey(stream))).map(([, fields]) => {
    const m: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) m[fields[i]!] = fields[i + 1]!;
    return m;
  });
}

/** Fields list to a map. */
export function fieldMap(fields: string[]): Record<string, string> {
  const m: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) m[fields[i]!] = fields[i + 1]!;
  return m;
}

/**
 * A MONITOR connection on a plain socket (ioredis's monitor mode can fail under heavy traffic
 * from other clients). Calls `onCommand` with the decoded arguments of every command run in
 * our database and when Redis ran it (milliseconds since the epoch, Redis's clock).
 */
export async function openMonitor(onCommand: (args: string[], atMs: number) => void): Promise<{ close(): void }> {
  const url = new URL(REDIS_URL);
  const db = url.pathname.replace('/', '') || '0';
  const socket = connect(Number(url.port || 6379), url.hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buffer = '';
  let ready: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (ready = resolve));
  socket.setEncoding('latin1'); // MONITOR escapes every non-ASCII byte; keep bytes as they come
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      if (line === '+OK') ready();
      const m = /^\+(\d+\.\d+) \[(\d+) [^\]]*\] (.*)$/.exec(line);
      if (m && m[2] === db) onCommand(parseMonitorArgs(m[3]!), Number(m[1]) * 1000);
    }
  });
  socket.write('MONITOR\r\n');
  await started;
  return { close: () => socket.destroy() };
}

/** Decodes the quoted, escaped arguments of a MONITOR line into UTF-8 strings. */
export function parseMonitorArgs(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] !== '"') {
      i++;
      continue;
    }
    i++;
    const bytes: number[] = [];
    while (i < text.length && text[i] !== '"') {
      const c = text[i]!;
      if (c === '\\') {
        const n = text[i + 1]!;
        const simple: Record<string, number> = { n: 10, r: 13, t: 9, a: 7, b: 8, '"': 34, '\\': 92 };
        if (n === 'x') {
          bytes.push(parseInt(text.slice(i + 2, i + 4), 16));
          i += 4;
        } else {
          bytes.push(simple[n] ?? n.charCodeAt(0));
          i += 2;
        }
      } else {
        bytes.push(c.charCodeAt(0));
        i++;
      }
    }
    i++;
    out.push(Buffer.from(bytes).toString('utf8'));
  }
  return out;
}

/** True when `redis-server` is installed (tests that start a Redis of their own need it). */
export const redisServerInstalled = spawnSync('sh', ['-c', 'command -v redis-server']).status === 0;

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * Registers the per-file cleanup most tests use: after each test, the closers pushed (last
 * first) and the keys of every test id pushed; after the file, the back-door connection.
 */
export function useTestCleanup(): { ids: string[]; closers: Array<() => Promise<unknown>> } {
  const ids: string[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
    for (const id of ids.splice(0)) await cleanupKeys(id);
  });
  afterAll(async () => {
    await rawRedis().quit();
  });
  return { ids, closers };
}

/**
 * A redis-server of the file's own on a free port (for tests that flush the script cache or
 * change ACL users), started before the file's tests and killed after them. Read `url` and
 * `admin` inside the tests. Only when {@link redisServerInstalled}.
 */
export function usePrivateRedis(): { url: string; admin: Redis } {
  let server: ChildProcess | undefined;
  const out = { url: '', admin: undefined as unknown as Redis };
  beforeAll(async () => {
    const port = await freePort();
    server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    out.url = `redis://127.0.0.1:${port}`;
    out.admin = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
    out.admin.on('error', () => undefined); // refused until the server listens
    await eventually(async () => (await out.admin.ping()) === 'PONG', 5000, 'redis-server to start');
  }, 10_000);
  afterAll(async () => {
    out.admin?.disconnect();
    const s = server;
    if (s && s.exitCode === null) {
      await new Promise<void>((resolve) => {
        s.once('exit', () => resolve());
        s.kill('SIGKILL');
      });
    }
  });
  return out;
}

/** Calls of each command on the server so far (commandstats), e.g. `{ xadd: 250, evalsha: 1 }`. */
export async function commandCalls(redis: Redis): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of (await redis.info('commandstats')).matchAll(/cmdstat_(\w+):calls=(\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}

/** Script calls (`EVALSHA` + `EVAL`) between two {@link commandCalls} readings. */
export function scriptCalls(before: Record<string, number>, after: Record<string, number>): number {
  return (after['evalsha'] ?? 0) + (after['eval'] ?? 0) - (before['evalsha'] ?? 0) - (before['eval'] ?? 0);
}

/** A logger that keeps its info, warn and error lines in `lines`. */
export function capturingLogger(lines: string[]): Logger {
  return { debug: () => undefined, info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) };
}
