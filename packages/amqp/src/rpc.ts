/**
 * RPC calls over RabbitMQ: one durable classic queue per API (`{prefix}.rpc.{api}`), published
 * through the default exchange with publisher confirms. The call's deadline travels twice: as
 * the message `expiration` (RabbitMQ drops the call when it expires in the queue) and as the
 * `x-lightbus-deadline` header (epoch ms), which the worker checks before handing the call on.
 *
 * At most once: a worker consumes with manual acknowledgements and a prefetch (the `prefetch`
 * option), and acknowledges each call when it hands it to the runtime, before the handler runs.
 * Calls it received but did not hand out yet go back to the queue if it stops or dies, so they
 * are still served once; a call whose handler was running when the worker died is not retried.
 * (Consuming with `noAck` would also be at-most-once, but then RabbitMQ pushes every queued call
 * to the first worker and ignores the prefetch, so work would not spread across workers.)
 *
 * @module
 */
import type { Channel, ConsumeMessage } from 'amqplib';
import {
  Notifier,
  describeError,
  sleep,
  type RpcCallOptions,
  type RpcConsumeOptions,
  type RpcMessage,
  type RpcTransport,
  type TransportContext,
} from '@lightbus/core';
import { ConnectionLease, describeAmqpError } from './connection.js';
import { settle } from './events.js';
import { CONTENT_TYPE, MalformedMessage, decodeCall, encodeCall } from './codec.js';
import { resolveOptions, type AmqpTransportOptions, type ResolvedAmqpOptions } from './options.js';

/** Header carrying the call's absolute deadline (milliseconds since the epoch). */
export const DEADLINE_HEADER = 'x-lightbus-deadline';

/** RPC calls through a durable queue per API. */
export class AmqpRpcTransport implements RpcTransport {
  /** Declared capabilities: RabbitMQ expires calls at their deadline, and workers drop late ones. */
  readonly capabilities = { deadlines: true };
  readonly #options: ResolvedAmqpOptions;
  readonly #context: TransportContext;
  readonly #closing = new AbortController();
  readonly #declared = new WeakMap<object, Map<string, Promise<void>>>();
  readonly #channels = new Set<Channel>();
  readonly #lease: ConnectionLease;

  /**
   * @param options see {@link AmqpTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: AmqpTransportOptions, context: TransportContext) {
    this.#options = resolveOptions(options);
    this.#context = context;
    this.#lease = new ConnectionLease(this.#options, context.logger, `lightbus ${context.serviceName} ${context.processName}`, this.#closing.signal, 'rpc');
  }

  /** Declares an API's queue once per connection, so a call published before any worker started waits for one. */
  async #ensureQueue(apiName: string, timeoutMs: number): Promise<void> {
    const conn = this.#lease.get();
    const model = await conn.get(undefined, timeoutMs);
    let cache = this.#declared.get(model);
    if (!cache) {
      cache = new Map();
      this.#declared.set(model, cache);
    }
    let declared = cache.get(apiName);
    if (!declared) {
      const queue = this.#options.names.rpcQueue(apiName);
      declared = (async () => {
        const channel = await model.createChannel();
        channel.on('error', () => undefined); // reported through the rejected operation
        try {
          await channel.assertQueue(queue, { durable: true });
        } finally {
          await channel.close().catch(() => undefined);
        }
      })();
      cache.set(apiName, declared);
      declared.catch(() => cache.delete(apiName));
    }
    await declared;
  }

  /** Publishes one call to its API's queue; resolves when RabbitMQ confirmed it. */
  async call(message: RpcMessage, options: RpcCallOptions): Promise<void> {
    const deadline = message.deadline ?? Date.now() + options.timeoutMs;
    const ttl = Math.max(1, Math.ceil(deadline - Date.now()));
    await this.#ensureQueue(message.apiName, ttl);
    await this.#lease.get().publish('', this.#options.names.rpcQueue(message.apiName), encodeCall(message), {
      expiration: String(ttl),
      headers: { [DEADLINE_HEADER]: deadline },
      contentType: CONTENT_TYPE,
      messageId: message.id,
      timestamp: Math.floor(Date.now() / 1000),
      type: `${message.apiName}.${message.procedureName}`,
      appId: 'lightbus',
    }, { timeoutMs: ttl, what: `the call ${message.apiName}.${message.procedureName}()` });
  }

  /**
   * Yields calls to the given APIs until the signal aborts. Reconnects after a lost connection.
   * Late calls are dropped; malformed ones are logged and dropped.
   */
  async *consume(apiNames: readonly string[], options: RpcConsumeOptions): AsyncIterable<RpcMessage> {
    const signal = AbortSignal.any([options.signal, this.#closing.signal]);
    const { logger } = this.#context;
    let failures = 0;
    while (!signal.aborted) {
      let channel: Channel | undefined;
      const buffer: ConsumeMessage[] = [];
      const notifier = new Notifier();
      let alive = true;
      let channelOpen = true;
      try {
        const model = await this.#lease.get().get(signal);
        channel = await model.createChannel();
        this.#channels.add(channel);
        channel.on('error', (error: Error) => logger.warn(`RabbitMQ channel of the RPC consumer: ${describeAmqpError(error)}`));
        channel.on('close', () => {
          alive = false;
          channelOpen = false;
          notifier.notify();
        });
        await channel.prefetch(this.#options.prefetch);
        for (const api of apiNames) {
          const queue = this.#options.names.rpcQueue(api);
          await channel.assertQueue(queue, { durable: true });
          await channel.consume(
            queue,
            (m) => {
              if (m === null) alive = false; // cancelled by the broker (queue deleted)
              else buffer.push(m);
              notifier.notify();
            },
            { noAck: false },
          );
        }
        const openedAt = Date.now();
        while (!signal.aborted && alive) {
          const raw = buffer.shift();
          if (!raw) {
            await notifier.wait(signal);
            continue;
          }
          if (!settle(channel, raw, 'ack')) break; // at most once: acknowledged as it is handed out
          const message = this.#decode(raw);
          if (message) yield message;
        }
        if (!signal.aborted) {
          // A channel that dies at once, again and again, must not make this loop spin.
          failures = Date.now() - openedAt > 5000 ? 0 : failures + 1;
          const delay = failures === 0 ? 0 : Math.min(30_000, 100 * 2 ** Math.min(failures, 8));
          logger.warn(`The RPC consumer lost its RabbitMQ channel; resuming${delay ? ` in ${delay} ms` : ''}.`);
          await sleep(delay, signal);
        }
      } catch (error) {
        if (signal.aborted) break;
        failures++;
        const delay = Math.min(30_000, 250 * 2 ** Math.min(failures, 7));
        logger.error(`Consuming RPC calls for ${apiNames.join(', ')} failed: ${describeAmqpError(error)}. Retrying in ${delay} ms.`);
        await sleep(delay, signal);
      } finally {
        if (channel) {
          // Closing returns the calls received but not handed out to the queue.
          this.#channels.delete(channel);
          if (channelOpen) await channel.close().catch(() => undefined);
        }
      }
    }
  }

  #decode(raw: ConsumeMessage): RpcMessage | undefined {
    const { logger } = this.#context;
    let call: Omit<RpcMessage, 'deadline'>;
    try {
      call = decodeCall(raw.content);
    } catch (error) {
      const reason = error instanceof MalformedMessage ? error.message : describeError(error);
      logger.warn(`Dropped a malformed RPC call from queue ${raw.fields.routingKey}: ${reason}.`);
      return undefined;
    }
    const header = (raw.properties.headers)?.[DEADLINE_HEADER];
    const deadline = typeof header === 'number' ? header : typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : undefined;
    if (deadline !== undefined && deadline < Date.now()) {
      logger.debug(`Dropped RPC ${call.apiName}.${call.procedureName}(): it arrived after its deadline.`, { id: call.id });
      return undefined;
    }
    return deadline === undefined ? call : { ...call, deadline };
  }

  /** Connects, waiting at most `connect_timeout` (on failure gives the connection up and throws). */
  open(): Promise<void> {
    return this.#lease.open();
  }

  /** Stops consuming (unserved calls go back to their queues) and releases the connection. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    await Promise.allSettled([...this.#channels].map((c) => c.close()));
    this.#channels.clear();
    await this.#lease.release();
  }
}
