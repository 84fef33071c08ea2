import { Redis } from 'ioredis';
import { decodeEventFields, deadLetterKey } from '../src/index.js';
import type { EventMessage } from '@lightbus/core';

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
