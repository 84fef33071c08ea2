/**
 * The worker reads stream entries as binary and converts them itself (StreamReplyDecoder),
 * reusing the strings of repeated field names and metadata values. What a listener depends on:
 * every entry comes out exactly as a text reply gives it, however the entries vary from one to
 * the next, and across replies.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { StreamReplyDecoder } from '../src/stream-reply.js';
import { cleanupKeys, rawRedis } from './helpers.js';

const id = `sr_${randomUUID().slice(0, 8)}`;

afterAll(async () => {
  await cleanupKeys(id);
});

/** Entries that defeat a cache keyed by position alone: same places, other bytes; same bytes, other places. */
function entries(): string[][] {
  const wide: string[] = [];
  for (let i = 0; i < 40; i++) wide.push(`:p${i}`, JSON.stringify(i % 3 === 0 ? 'same' : `v${i}`));
  return [
    ['id', 'a', 'api_name', 'shop.orders', 'event_name', 'placed', 'version', '1', ':n', '1'],
    ['id', 'b', 'api_name', 'shop.orders', 'event_name', 'placed', 'version', '1', ':n', '2'],
    ['id', 'c', 'api_name', 'shop.orderz', 'event_name', 'placed', 'version', '2', ':n', '2'],
    ['id', 'd', 'api_name', 'café.✓', 'event_name', 'été', 'version', '1', ':naïve', '"✓ 🎉"'],
    ['id', 'e', 'api_name', 'café.✓', 'event_name', 'ete', 'version', '1', ':naive', '"✓ 🎉"'],
    // metadata moved to other places, and a name equal to an earlier value
    ['api_name', 'café.✓', 'id', 'f', 'version', '1', 'event_name', 'été', ':naïve', '"x"'],
    ['event_name', 'api_name', 'api_name', 'event_name', 'id', 'g', 'version', '10', 'placed', 'id'],
    ['id', '', 'api_name', '', 'event_name', '', 'version', '', ':empty', '""'],
    ['id', 'h', 'api_name', 'shop.orders', 'event_name', 'placed', 'version', '1', ...wide],
    ['id', 'i', 'api_name', 'shop.orders', 'event_name', 'placed', 'version', '1', ...wide.map((f, i) => (i === 79 ? '"changed"' : f))],
    ['', ''],
  ];
}

describe('binary stream replies', () => {
  it('decode to exactly the text reply, entry after entry and reply after reply', async () => {
    const redis = rawRedis();
    const stream = `${id}.a.*:stream`;
    for (const fields of entries()) await redis.xadd(stream, '*', ...fields);
    const decoder = new StreamReplyDecoder();
    // Several reads through one decoder, one entry per read and then all at once.
    const all = entries().length;
    for (const count of [1, 3, all]) {
      let from = '0';
      while (true) {
        const text = await redis.call('XREAD', 'COUNT', count, 'STREAMS', stream, from);
        const binary = await redis.callBuffer('XREAD', 'COUNT', count, 'STREAMS', stream, from);
        if (text === null) {
          expect(decoder.decode(binary)).toBeNull();
          break;
        }
        const decoded = decoder.decode(binary);
        expect(decoded).toEqual(text);
        const last = decoded![0]![1];
        from = last[last.length - 1]![0];
      }
    }
  });

  it('keeps deleted entries (null fields) and passes text replies through', async () => {
    const redis = rawRedis();
    const stream = `${id}.b.*:stream`;
    const ids: string[] = [];
    for (const fields of entries().slice(0, 4)) ids.push((await redis.xadd(stream, '*', ...fields))!);
    await redis.xgroup('CREATE', stream, 'g', '0');
    await redis.call('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', 10, 'STREAMS', stream, '>');
    await redis.xdel(stream, ids[1]!);
    const text = await redis.call('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', 10, 'STREAMS', stream, '0');
    const binary = await redis.callBuffer('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', 10, 'STREAMS', stream, '0');
    const decoder = new StreamReplyDecoder();
    const decoded = decoder.decode(binary);
    expect(decoded).toEqual(text);
    expect(decoded![0]![1][1]).toEqual([ids[1], null]);
    expect(decoder.decode(text)).toEqual(text);
  });
});
