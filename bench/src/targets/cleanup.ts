/**
 * Deleting what a run left on the shared brokers: only names that carry the run id, never a
 * flush.
 *
 * Each broker's client is imported when its cleanup runs (in the orchestrator, after the run):
 * every target module imports this file, and static imports would load all three client
 * libraries into every worker, adding theirs to the RSS each worker reports.
 */

/** Deletes the keys of `url`'s database that match `pattern` (SCAN + UNLINK). */
export async function cleanupRedisKeys(url: string, pattern: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Deletes the JetStream streams (and key-value buckets, which are streams) whose names start with `prefix`. */
export async function cleanupNatsStreams(servers: string, prefix: string): Promise<void> {
  const { connect: natsConnect } = await import('nats');
  const nc = await natsConnect({ servers, noAsyncTraces: true });
  try {
    const jsm = await nc.jetstreamManager();
    const names: string[] = [];
    for await (const name of jsm.streams.names()) {
      if (name.startsWith(prefix) || name.startsWith(`KV_${prefix}`)) names.push(name);
    }
    for (const name of names) await jsm.streams.delete(name);
  } finally {
    await nc.close();
  }
}

/** Deletes the named queues and exchanges (a missing one is fine). */
export async function cleanupAmqpPrefix(
  url: string,
  _prefix: string,
  names: { queues: string[]; exchanges: string[] },
): Promise<void> {
  const { default: amqplib } = await import('amqplib');
  const connection = await amqplib.connect(url);
  try {
    for (const queue of names.queues) {
      // A failed delete closes the channel: one channel per name.
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      try {
        await channel.deleteQueue(queue);
        await channel.close();
      } catch {
        // already gone
      }
    }
    for (const exchange of names.exchanges) {
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      try {
        await channel.deleteExchange(exchange);
        await channel.close();
      } catch {
        // already gone
      }
    }
  } finally {
    await connection.close();
  }
}
