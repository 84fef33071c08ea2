/**
 * Reading and replaying the Redis transport's dead-letter streams (`{stream}:dead_letters`).
 * A dead-lettered entry keeps the original fields and adds `error`, `attempts`, `listener`,
 * `stream_id` and `stream`; replaying puts the original fields back on the original stream
 * (a new entry, so every listener group sees it again) and deletes the dead letter.
 *
 * @module
 */
import type { Redis } from 'ioredis';

/** Fields the transport adds when it dead-letters an entry. */
export const DEAD_LETTER_FIELDS = ['error', 'attempts', 'listener', 'stream_id', 'stream'] as const;

/** One dead-lettered entry. */
export interface DeadLetter {
  /** Its id in the dead-letter stream. */
  id: string;
  /** The original entry's fields (without the dead-letter ones). */
  fields: string[];
  /** Why it was dead-lettered. */
  error: string;
  /** Deliveries before it was given up. */
  attempts: number;
  /** The listener group that gave up. */
  listener: string;
  /** The original entry's id. */
  streamId: string;
  /** The original stream. */
  stream: string;
}

/** Reads up to `limit` dead letters of `stream`, oldest first. */
export async function readDeadLetters(redis: Redis, stream: string, limit = 1000): Promise<DeadLetter[]> {
  const entries = (await redis.xrange(`${stream}:dead_letters`, '-', '+', 'COUNT', limit)) as Array<[string, string[]]>;
  return entries.map(([id, raw]) => {
    const fields: string[] = [];
    const extra: Record<string, string> = {};
    // The dead-letter fields are the last ones added; read them from the end.
    const tail = raw.slice(-DEAD_LETTER_FIELDS.length * 2);
    const hasTail = DEAD_LETTER_FIELDS.every((name, i) => tail[i * 2] === name);
    const body = hasTail ? raw.slice(0, raw.length - tail.length) : raw;
    if (hasTail) for (let i = 0; i < tail.length; i += 2) extra[tail[i]!] = tail[i + 1]!;
    fields.push(...body);
    return {
      id,
      fields,
      error: extra['error'] ?? '',
      attempts: Number(extra['attempts'] ?? 0),
      listener: extra['listener'] ?? '',
      streamId: extra['stream_id'] ?? '',
      stream: extra['stream'] ?? stream,
    };
  });
}

/**
 * Replays dead letters of `stream` chosen by `filter` (all by default): XADD of the original
 * fields to the original stream, then XDEL of the dead letter. Returns how many were replayed.
 */
export async function replayDeadLetters(redis: Redis, stream: string, filter: (letter: DeadLetter) => boolean = () => true): Promise<number> {
  let replayed = 0;
  for (const letter of await readDeadLetters(redis, stream)) {
    if (!filter(letter) || letter.fields.length === 0 || letter.fields.length % 2 !== 0) continue;
    await redis.xadd(letter.stream, '*', ...letter.fields);
    await redis.xdel(`${stream}:dead_letters`, letter.id);
    replayed++;
  }
  return replayed;
}
