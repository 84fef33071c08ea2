/**
 * Events over RabbitMQ: one durable topic exchange (`{prefix}.events`, routing key
 * `{api}.{event}`), one durable quorum queue per listener group (`{prefix}.events.{group}`, group
 * = `{service}-{listener}`) bound to the routing keys of the events the listener wants, and a
 * dead-letter exchange and queue (`{prefix}.dead`).
 *
 * Guarantees: publishes are confirmed by the broker before `send()` resolves; events are
 * acknowledged only when the handler settles them (at least once); a consumer that stops or
 * dies returns its unacknowledged events to the queue; a nacked event is held by this process
 * for the retry delay and then returned to the queue (the quorum queue counts the delivery in
 * `x-delivery-count`); dead letters are published with the error before the event is
 * acknowledged.
 *
 * @module
 */
import type { Channel, ChannelModel, ConsumeMessage, Options } from 'amqplib';
import {
  Notifier,
  TransportError,
  describeError,
  sleep,
  type EventCapabilities,
  type EventMessage,
  type EventSendOptions,
  type EventSubscription,
  type EventTransport,
  type ReceivedEvent,
  type TransportContext,
} from '@lightbus/core';
import { ConnectionLease, describeAmqpError, replyCode } from './connection.js';
import { CONTENT_TYPE, MalformedMessage, decodeEvent, encodeEvent } from './codec.js';
import { resolveOptions, routingKey, type AmqpTransportOptions, type ResolvedAmqpOptions } from './options.js';

/** Headers written on a dead-lettered event. */
export const DEAD_LETTER_HEADERS = {
  /** Why it was dead-lettered (the handler's error, or why the message is malformed). */
  error: 'x-lightbus-error',
  /** How many deliveries were made. */
  attempts: 'x-lightbus-attempts',
  /** The listener group (`{service}-{listener}`) it failed in. */
  listener: 'x-lightbus-listener',
  /** The queue it came from. */
  queue: 'x-lightbus-queue',
  /** When it was dead-lettered (ISO 8601). */
  time: 'x-lightbus-dead-lettered-at',
} as const;

const PRECONDITION_FAILED = 406;

/**
 * How many times a message was delivered before: the quorum queue's `x-delivery-count`, and at
 * least 1 when RabbitMQ flags it redelivered (a classic queue, or a broker version that does not
 * count returns after a consumer died).
 */
function previousDeliveries(message: ConsumeMessage): number {
  const count = message.properties.headers?.['x-delivery-count'] as unknown;
  const counted = typeof count === 'number' && Number.isFinite(count) && count >= 0 ? count : 0;
  return Math.max(counted, message.fields.redelivered ? 1 : 0);
}

/**
 * Acknowledges or requeues on a channel that may be closing: amqplib throws then, and RabbitMQ
 * redelivers the message anyway. Returns whether it was sent.
 */
export function settle(channel: Channel, message: ConsumeMessage, how: 'ack' | 'requeue'): boolean {
  try {
    if (how === 'ack') channel.ack(message);
    else channel.nack(message, false, true);
    return true;
  } catch {
    return false;
  }
}

/** One consuming channel of one listener group. */
class GroupSession {
  readonly channel: Channel;
  readonly #notifier = new Notifier();
  readonly #buffer: ConsumeMessage[] = [];
  /** Handed to the handler, not settled yet. */
  readonly outstanding = new Set<ConsumeMessage>();
  /** Nacked, waiting for their retry delay. */
  readonly held = new Map<ConsumeMessage, NodeJS.Timeout>();
  consumerTag: string | undefined;
  alive = true;
  #channelOpen = true;

  constructor(channel: Channel) {
    this.channel = channel;
    channel.on('close', () => {
      this.#channelOpen = false;
      this.die();
    });
  }

  deliver(message: ConsumeMessage | null): void {
    if (message === null) this.die(); // cancelled by the broker (queue deleted)
    else this.#buffer.push(message);
    this.#notifier.notify();
  }

  die(): void {
    this.alive = false;
    for (const timer of this.held.values()) clearTimeout(timer);
    this.held.clear();
    this.outstanding.clear();
    this.#buffer.length = 0;
    this.#notifier.notify();
  }

  /** Waits for at least one message (or death, or abort), then takes up to `max`. */
  async take(max: number, signal: AbortSignal): Promise<ConsumeMessage[]> {
    if (this.#buffer.length === 0) {
      while (this.alive && this.#buffer.length === 0 && !signal.aborted) await this.#notifier.wait(signal);
      // Deliveries that arrived in the same read are dispatched one by one: let them land, so
      // a backlog is handed out in full batches.
      if (this.#buffer.length < max) await new Promise((resolve) => setImmediate(resolve));
    }
    return this.#buffer.splice(0, max);
  }

  ack(message: ConsumeMessage): boolean {
    if (!this.outstanding.delete(message) || !this.alive) return false;
    this.#notifier.notify();
    return settle(this.channel, message, 'ack');
  }

  /** Keeps the message for `delayMs`, then returns it to the queue. */
  hold(message: ConsumeMessage, delayMs: number): boolean {
    if (!this.outstanding.delete(message) || !this.alive) return false;
    const timer = setTimeout(() => {
      this.held.delete(message);
      if (this.alive) settle(this.channel, message, 'requeue');
      this.#notifier.notify();
    }, Math.max(0, delayMs));
    this.held.set(message, timer);
    return true;
  }

  /** Returns messages that were taken but will not be handed out. */
  requeue(messages: readonly ConsumeMessage[]): void {
    for (const message of messages) if (this.alive) settle(this.channel, message, 'requeue');
  }

  /** Stops new deliveries and returns the ones not handed out yet. */
  async stopConsuming(): Promise<void> {
    if (!this.alive) return;
    if (this.consumerTag !== undefined) {
      const tag = this.consumerTag;
      this.consumerTag = undefined;
      await Promise.race([this.channel.cancel(tag).catch(() => undefined), sleep(1000)]);
    }
    for (const message of this.#buffer.splice(0)) if (this.alive) settle(this.channel, message, 'requeue');
  }

  /** Waits until every handed-out message is settled (held ones included), at most `timeoutMs`. */
  async drained(timeoutMs: number, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.alive && (this.outstanding.size > 0 || this.held.size > 0) && !signal.aborted) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      await this.#notifier.wait(signal, left);
    }
  }

  async close(): Promise<void> {
    this.die();
    if (this.#channelOpen) await this.channel.close().catch(() => undefined);
  }
}

/** Events through a RabbitMQ topic exchange with a quorum queue per listener group. */
export class AmqpEventTransport implements EventTransport {
  /**
   * Declared capabilities. Classic and quorum queues forget a message once it is acknowledged,
   * so there is no history and no replay (`since` other than `'new'` is ignored with a warning).
   */
  readonly capabilities: EventCapabilities = {
    consumerGroups: true,
    history: false,
    replay: false,
    deadLetter: true,
    redelivery: true,
    durable: true,
  };
  readonly #options: ResolvedAmqpOptions;
  readonly #context: TransportContext;
  readonly #closing = new AbortController();
  readonly #sessions = new Set<GroupSession>();
  readonly #lingering = new Set<Promise<void>>();
  readonly #lease: ConnectionLease;

  /**
   * @param options see {@link AmqpTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: AmqpTransportOptions, context: TransportContext) {
    this.#options = resolveOptions(options);
    this.#context = context;
    this.#lease = new ConnectionLease(this.#options, context.logger, `lightbus ${context.serviceName} ${context.processName}`, this.#closing.signal, 'event');
  }

  /** Publishes the event to the events exchange; resolves when RabbitMQ confirmed it. */
  async send(message: EventMessage, options: EventSendOptions = {}): Promise<void> {
    const { names } = this.#options;
    const key = routingKey(message.apiName, message.eventName);
    const properties: Options.Publish = {
      persistent: true,
      contentType: CONTENT_TYPE,
      messageId: message.id,
      timestamp: Math.floor(Date.now() / 1000),
      type: key,
      appId: 'lightbus',
    };
    await this.#lease.get().publish(names.eventsExchange, key, encodeEvent(message), properties, {
      timeoutMs: options.timeoutMs ?? this.#options.connectTimeoutMs,
      declare: [[names.eventsExchange, 'topic']],
      retry: true,
      what: `event ${message.apiName}.${message.eventName}`,
    });
  }

  /** Yields batches for one listener group until the signal aborts; see the module notes. */
  async *consume(subscription: EventSubscription): AsyncIterable<readonly ReceivedEvent[]> {
    const signal = AbortSignal.any([subscription.signal, this.#closing.signal]);
    const { logger } = this.#context;
    const group = `${this.#context.serviceName}-${subscription.listenerName}`;
    const queue = this.#options.names.groupQueue(group);
    const batchSize = Math.max(1, Math.floor(subscription.batchSize ?? 10));
    const keys = [...new Set(subscription.events.map((e) => routingKey(e.apiName, e.eventName)))];
    const wanted = new Set(keys);
    if (subscription.since !== undefined && subscription.since !== 'new') {
      logger.warn(
        `Listener ${subscription.listenerName}: the amqp transport cannot replay past events (RabbitMQ queues keep no history), so "since" is ignored; a new listener group starts with new events. Use the Redis or NATS transport for replay.`,
      );
    }
    let failures = 0;
    let ready = false;
    while (!signal.aborted) {
      let session: GroupSession | undefined;
      try {
        session = await this.#openSession(queue, keys, batchSize, signal);
        // The queue is declared and bound: events published from now on are kept for this group.
        if (!ready) {
          ready = true;
          subscription.onReady?.();
        }
        const openedAt = Date.now();
        while (!signal.aborted && session.alive) {
          const messages = await session.take(batchSize, signal);
          if (signal.aborted) {
            session.requeue(messages); // stopped while they arrived: nobody will handle them here
            break;
          }
          const batch: ReceivedEvent[] = [];
          for (const raw of messages) {
            const received = await this.#receive(session, raw, group, queue, wanted);
            if (received) batch.push(received);
          }
          if (batch.length > 0) yield batch;
        }
        if (!signal.aborted) {
          // A channel that dies at once, again and again, must not make this loop spin.
          failures = Date.now() - openedAt > 5000 ? 0 : failures + 1;
          const delay = failures === 0 ? 0 : Math.min(30_000, 100 * 2 ** Math.min(failures, 8));
          logger.warn(`Listener ${subscription.listenerName}: the RabbitMQ channel closed; resuming${delay ? ` in ${delay} ms` : ''}.`);
          await sleep(delay, signal);
        }
      } catch (error) {
        if (signal.aborted) break;
        failures++;
        const delay = Math.min(30_000, 250 * 2 ** Math.min(failures, 7));
        logger.error(`Listener ${subscription.listenerName}: consuming ${queue} failed: ${describeAmqpError(error)}. Retrying in ${delay} ms.`);
        await sleep(delay, signal);
      } finally {
        if (session) await this.#endSession(session);
      }
    }
  }

  async #openSession(queue: string, keys: string[], batchSize: number, signal: AbortSignal): Promise<GroupSession> {
    const model = await this.#lease.get().get(signal);
    await this.#declareTopology(model, queue, keys);
    const channel = await model.createChannel();
    channel.on('error', (error: Error) => this.#context.logger.warn(`RabbitMQ channel of ${queue}: ${describeAmqpError(error)}`));
    const session = new GroupSession(channel);
    this.#sessions.add(session);
    try {
      await channel.prefetch(batchSize);
      const { consumerTag } = await channel.consume(queue, (message) => session.deliver(message), { noAck: false });
      session.consumerTag = consumerTag;
      if (this.#closing.signal.aborted) throw new TransportError('The transport closed while the listener started.');
      return session;
    } catch (error) {
      await this.#endSession(session);
      throw error;
    }
  }

  /** Declares the exchanges, the dead-letter queue, the group queue and its bindings. */
  async #declareTopology(model: ChannelModel, queue: string, keys: string[]): Promise<void> {
    const { names, maxDeliveries } = this.#options;
    let channel = await model.createChannel();
    channel.on('error', () => undefined); // reported through the rejected operation
    try {
      await channel.assertExchange(names.eventsExchange, 'topic', { durable: true });
      await channel.assertExchange(names.deadExchange, 'topic', { durable: true });
      await channel.assertQueue(names.deadQueue, { durable: true });
      await channel.bindQueue(names.deadQueue, names.deadExchange, '#');
      try {
        await channel.assertQueue(queue, {
          durable: true,
          arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': maxDeliveries, 'x-dead-letter-exchange': names.deadExchange },
        });
      } catch (error) {
        if (replyCode(error) !== PRECONDITION_FAILED) throw error;
        // The queue exists with other arguments (another max_deliveries, or declared by hand):
        // use it as it is rather than refusing to listen.
        this.#context.logger.warn(
          `The queue ${queue} already exists with other arguments than this transport would give it (${describeAmqpError(error)}); using it as it is. Delete the queue (its events are lost) or adjust max_deliveries to make them match.`,
        );
        channel = await model.createChannel();
        channel.on('error', () => undefined);
        await channel.checkQueue(queue);
      }
      for (const key of keys) await channel.bindQueue(queue, names.eventsExchange, key);
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  async #receive(session: GroupSession, raw: ConsumeMessage, group: string, queue: string, wanted: Set<string>): Promise<ReceivedEvent | undefined> {
    const { logger } = this.#context;
    let message: EventMessage;
    const deliveryCount = previousDeliveries(raw) + 1;
    session.outstanding.add(raw);
    try {
      message = decodeEvent(raw.content);
    } catch (error) {
      const reason = error instanceof MalformedMessage ? error.message : describeError(error);
      logger.error(`Listener group ${group} received a malformed message (routing key ${raw.fields.routingKey}): ${reason}. Dead-lettering it to ${this.#options.names.deadQueue}.`);
      await this.#deadLetter(session, raw, group, queue, `malformed message: ${reason}`, deliveryCount).catch((e: unknown) =>
        logger.error(`Dead-lettering a malformed message failed: ${describeAmqpError(e)}. It will be redelivered.`),
      );
      return undefined;
    }
    if (!wanted.has(routingKey(message.apiName, message.eventName))) {
      // A binding left from an earlier version of this listener: not asked for, skip it.
      session.ack(raw);
      return undefined;
    }
    return {
      message,
      position: String(raw.fields.deliveryTag),
      deliveryCount,
      ack: async () => {
        if (!session.ack(raw)) logger.debug(`Event ${message.id} was not acknowledged: its channel closed, so RabbitMQ will deliver it again.`);
      },
      nack: async ({ delayMs }) => {
        session.hold(raw, delayMs);
      },
      deadLetter: async (error) => {
        await this.#deadLetter(session, raw, group, queue, describeError(error), deliveryCount);
      },
    };
  }

  /** Publishes a copy with the error to the dead-letter exchange, then acknowledges the original. */
  async #deadLetter(session: GroupSession, raw: ConsumeMessage, group: string, queue: string, error: string, attempts: number): Promise<void> {
    const { names } = this.#options;
    const headers: Record<string, unknown> = { ...(raw.properties.headers) };
    delete headers['x-delivery-count'];
    headers[DEAD_LETTER_HEADERS.error] = error.slice(0, 8000);
    headers[DEAD_LETTER_HEADERS.attempts] = attempts;
    headers[DEAD_LETTER_HEADERS.listener] = group;
    headers[DEAD_LETTER_HEADERS.queue] = queue;
    headers[DEAD_LETTER_HEADERS.time] = new Date().toISOString();
    const props = raw.properties;
    const properties: Options.Publish = { headers, persistent: true, contentType: props.contentType ?? CONTENT_TYPE };
    if (props.messageId) properties.messageId = props.messageId;
    if (props.type) properties.type = props.type;
    if (props.timestamp) properties.timestamp = props.timestamp;
    try {
      await this.#lease.get().publish(names.deadExchange, raw.fields.routingKey, raw.content, properties, {
        timeoutMs: this.#options.connectTimeoutMs,
        declare: [[names.deadExchange, 'topic']],
        retry: true,
        what: `a dead letter of ${group}`,
      });
    } catch (e) {
      session.hold(raw, 1000); // not stored: give it back to the queue, without spinning
      throw e;
    }
    session.ack(raw);
  }

  async #endSession(session: GroupSession): Promise<void> {
    await session.stopConsuming();
    const finish = async () => {
      await session.drained(this.#options.ackTimeoutMs, this.#closing.signal);
      await session.close();
      this.#sessions.delete(session);
    };
    if (session.outstanding.size === 0 && session.held.size === 0) {
      await finish();
      return;
    }
    // Handed-out events keep their channel (so their acks count) for up to acknowledgement_timeout;
    // then the channel closes and RabbitMQ gives what is left to another consumer.
    const lingering = finish().catch(() => undefined);
    this.#lingering.add(lingering);
    void lingering.finally(() => this.#lingering.delete(lingering));
  }

  /** Connects, waiting at most `connect_timeout` (on failure gives the connection up and throws). */
  open(): Promise<void> {
    return this.#lease.open();
  }

  /** Stops every consume loop (their unsettled events go back to their queues) and releases the connection. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    await Promise.allSettled([...this.#sessions].map((s) => s.close()));
    await Promise.allSettled([...this.#lingering]);
    await this.#lease.release();
  }
}
