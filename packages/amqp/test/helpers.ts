/**
 * Test helpers: a unique name prefix per test run, and a back door that reads and cleans the
 * real RabbitMQ directly through amqplib, bypassing the transports under test.
 */
import { randomBytes } from 'node:crypto';
import amqp, { type Channel, type ChannelModel, type GetMessage } from 'amqplib';
import type { EventMessage, EventSubscription, EventTransport } from '@lightbus/core';
import { amqpNames, decodeEvent, DEAD_LETTER_HEADERS, type AmqpTransportOptions } from '../src/index.js';

/** The broker the tests use. */
export const AMQP_URL = process.env['LIGHTBUS_AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672';

/** A fresh prefix: every queue and exchange a test file declares starts with it. */
export function testPrefix(): string {
  return `lbtest_amqp_${randomBytes(4).toString('hex')}`;
}

/** Direct access to the broker for checks and cleanup. */
export class Backdoor {
  #model: ChannelModel | undefined;
  readonly names: ReturnType<typeof amqpNames>;
  readonly queues = new Set<string>();

  constructor(readonly prefix: string) {
    this.names = amqpNames(prefix);
  }

  /** Transport options for this run. */
  options(extra: AmqpTransportOptions = {}): AmqpTransportOptions {
    return { url: AMQP_URL, queue_prefix: this.prefix, ...extra };
  }

  async #connection(): Promise<ChannelModel> {
    this.#model ??= await amqp.connect(AMQP_URL, { noDelay: true });
    return this.#model;
  }

  /** Runs `fn` on a fresh channel (a failed operation only kills that channel). */
  async withChannel<T>(fn: (channel: Channel) => Promise<T>): Promise<T> {
    const channel = await (await this.#connection()).createChannel();
    channel.on('error', () => undefined);
    try {
      return await fn(channel);
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  /** A queue bound to every event of `apiName`, counting what was really published. */
  async tap(apiName: string): Promise<void> {
    const queue = `${this.prefix}.tap.${apiName}`;
    this.queues.add(queue);
    await this.withChannel(async (ch) => {
      await ch.assertExchange(this.names.eventsExchange, 'topic', { durable: true });
      await ch.assertQueue(queue, { durable: false });
      await ch.bindQueue(queue, this.names.eventsExchange, `${apiName}.#`);
    });
  }

  /** How many events of `apiName` reached the exchange since {@link tap}. */
  async tapped(apiName: string): Promise<number> {
    return this.withChannel(async (ch) => (await ch.checkQueue(`${this.prefix}.tap.${apiName}`)).messageCount);
  }

  /** Messages in a queue right now (the queue must exist). */
  async count(queue: string): Promise<number> {
    return this.withChannel(async (ch) => (await ch.checkQueue(queue)).messageCount);
  }

  /** Reads every dead letter without removing any (they are requeued when the channel closes). */
  async deadLetters(): Promise<Array<{ message: EventMessage | undefined; raw: GetMessage; error: string; listener: string; attempts: number }>> {
    return this.withChannel(async (ch) => {
      const out = [];
      for (;;) {
        const m = await ch.get(this.names.deadQueue, { noAck: false });
        if (m === false) break;
        const headers = (m.properties.headers ?? {}) as Record<string, unknown>;
        let message: EventMessage | undefined;
        try {
          message = decodeEvent(m.content);
        } catch {
          message = undefined;
        }
        out.push({
          message,
          raw: m,
          error: text(headers[DEAD_LETTER_HEADERS.error]),
          listener: text(headers[DEAD_LETTER_HEADERS.listener]),
          attempts: Number(headers[DEAD_LETTER_HEADERS.attempts] ?? 0),
        });
      }
      return out;
    });
  }

  /** Publishes raw bytes to the events exchange (for malformed-message tests). */
  async publishRaw(key: string, content: Buffer): Promise<void> {
    await this.withChannel(async (ch) => {
      await ch.assertExchange(this.names.eventsExchange, 'topic', { durable: true });
      ch.publish(this.names.eventsExchange, key, content, { persistent: true });
    });
  }

  /** Deletes queues. */
  async deleteQueues(queues: Iterable<string>): Promise<void> {
    for (const q of queues) {
      await this.withChannel((ch) => ch.deleteQueue(q)).catch(() => undefined);
      this.queues.delete(q);
    }
  }

  /** Deletes everything this run declared and closes the connection. */
  async dispose(): Promise<void> {
    await this.deleteQueues([...this.queues, this.names.deadQueue]);
    for (const ex of [this.names.eventsExchange, this.names.deadExchange]) {
      await this.withChannel((ch) => ch.deleteExchange(ex)).catch(() => undefined);
    }
    await this.#model?.close().catch(() => undefined);
    this.#model = undefined;
  }
}

/** Wraps an event transport to record the listener group queues it uses (for cleanup). */
export function recording(transport: EventTransport, onGroup: (listenerName: string) => void): EventTransport {
  return {
    capabilities: transport.capabilities,
    open: () => transport.open?.() ?? Promise.resolve(),
    close: () => transport.close(),
    send: (message, options) => transport.send(message, options),
    consume: (subscription: EventSubscription) => {
      onGroup(subscription.listenerName);
      return transport.consume(subscription);
    },
  };
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return '';
}
