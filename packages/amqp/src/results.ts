/**
 * RPC results over RabbitMQ. Each process owns one exclusive reply queue
 * (`{prefix}.reply.{service}.{process}.{random}`, deleted by RabbitMQ when the connection
 * closes) and one consumer on it. `prepare()` returns `amqp+queue://{queue}?id={rpc id}`; the
 * worker publishes the result to that queue with the RPC id as correlation id, and the caller
 * routes it to the waiting call by that id.
 *
 * Why not RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): a reply to it is only delivered
 * on the channel that published the request, but in Lightbus the RPC transport publishes the call
 * and the result transport receives the result (they may even be different brokers), so the two
 * never share a channel. A reply queue per process costs one declaration per connection, not one
 * per call.
 *
 * @module
 */
import type { Channel } from 'amqplib';
import {
  ErrorCodes,
  LightbusError,
  Notifier,
  TimeoutError,
  sleep,
  type PendingResult,
  type ResultMessage,
  type ResultTransport,
  type RpcMessage,
  type TransportContext,
} from '@lightbus/core';
import { randomBytes } from 'node:crypto';
import { ConnectionLease, describeAmqpError } from './connection.js';
import { CONTENT_TYPE, MalformedMessage, decodeResult, encodeResult } from './codec.js';
import { resolveOptions, type AmqpTransportOptions, type ResolvedAmqpOptions } from './options.js';

/** The URI scheme of this transport's return paths. */
export const RETURN_PATH_SCHEME = 'amqp+queue';

/** Builds a return path: `amqp+queue://{queue}?id={correlation id}`. */
export function buildReturnPath(queue: string, correlationId: string): string {
  return `${RETURN_PATH_SCHEME}://${encodeURIComponent(queue)}?id=${encodeURIComponent(correlationId)}`;
}

/** Splits a return path into queue and correlation id; undefined when it is not one of ours. */
export function parseReturnPath(returnPath: string): { queue: string; correlationId: string } | undefined {
  const prefix = `${RETURN_PATH_SCHEME}://`;
  if (!returnPath.startsWith(prefix)) return undefined;
  const rest = returnPath.slice(prefix.length);
  const q = rest.indexOf('?');
  if (q <= 0) return undefined;
  const id = new URLSearchParams(rest.slice(q + 1)).get('id');
  if (!id) return undefined;
  try {
    return { queue: decodeURIComponent(rest.slice(0, q)), correlationId: id };
  } catch {
    return undefined;
  }
}

interface Waiting {
  result?: ResultMessage;
  resolve?: (result: ResultMessage) => void;
}

/** Results through one exclusive reply queue per process. */
export class AmqpResultTransport implements ResultTransport {
  /** Declared capabilities. */
  readonly capabilities = { schemes: [RETURN_PATH_SCHEME] };
  readonly #options: ResolvedAmqpOptions;
  readonly #context: TransportContext;
  readonly #closing = new AbortController();
  readonly #queue: string;
  readonly #waiting = new Map<string, Waiting>();
  readonly #ready = new Notifier();
  #channel: Channel | undefined;
  #consuming = false;
  #loop: Promise<void> | undefined;
  #lastError: unknown;
  readonly #lease: ConnectionLease;

  /**
   * @param options see {@link AmqpTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: AmqpTransportOptions, context: TransportContext) {
    this.#options = resolveOptions(options);
    this.#context = context;
    this.#lease = new ConnectionLease(this.#options, context.logger, `lightbus ${context.serviceName} ${context.processName}`, this.#closing.signal, 'result');
    this.#queue = this.#options.names.replyQueue(context.serviceName, context.processName, randomBytes(4).toString('hex'));
  }

  /** The name of this process's reply queue. */
  get replyQueue(): string {
    return this.#queue;
  }

  /** Keeps the reply queue declared and consumed, across reconnects. */
  async #replyLoop(): Promise<void> {
    const signal = this.#closing.signal;
    const { logger } = this.#context;
    let failures = 0;
    while (!signal.aborted) {
      let channel: Channel | undefined;
      let channelOpen = false;
      try {
        const conn = this.#lease.get();
        const model = await conn.get(signal, Number.POSITIVE_INFINITY);
        channel = await model.createChannel();
        channelOpen = true;
        const closed = new Notifier();
        let alive = true;
        channel.on('error', (error: Error) => logger.warn(`RabbitMQ channel of the reply queue: ${describeAmqpError(error)}`));
        channel.on('close', () => {
          alive = false;
          channelOpen = false;
          this.#consuming = false;
          closed.notify();
        });
        await channel.assertQueue(this.#queue, { exclusive: true, autoDelete: true, durable: false });
        await channel.consume(
          this.#queue,
          (m) => {
            if (m === null) {
              alive = false;
              closed.notify();
              return;
            }
            this.#deliver(m.properties.correlationId as string | undefined, m.content);
          },
          { noAck: true, exclusive: true },
        );
        this.#channel = channel;
        this.#consuming = true;
        this.#ready.notify();
        const openedAt = Date.now();
        while (alive && !signal.aborted) await closed.wait(signal);
        this.#consuming = false;
        if (!signal.aborted) {
          failures = Date.now() - openedAt > 5000 ? 0 : failures + 1;
          const delay = failures === 0 ? 0 : Math.min(10_000, 100 * 2 ** Math.min(failures, 7));
          logger.warn(`Lost the reply queue ${this.#queue}; declaring it again${delay ? ` in ${delay} ms` : ''}. Results sent meanwhile are lost (their calls time out).`);
          await sleep(delay, signal);
        }
      } catch (error) {
        this.#consuming = false;
        if (signal.aborted) break;
        this.#lastError = error;
        this.#ready.notify();
        failures++;
        const delay = Math.min(10_000, 100 * 2 ** Math.min(failures, 7));
        logger.error(`Could not consume the reply queue ${this.#queue}: ${describeAmqpError(error)}. Retrying in ${delay} ms.`);
        await sleep(delay, signal);
      } finally {
        if (channel && this.#channel === channel) this.#channel = undefined;
        if (channel && channelOpen) await channel.close().catch(() => undefined);
      }
    }
  }

  #deliver(correlationId: string | undefined, content: Buffer): void {
    const { logger } = this.#context;
    if (!correlationId) {
      logger.warn(`Dropped a message without a correlation id from the reply queue ${this.#queue}.`);
      return;
    }
    const waiting = this.#waiting.get(correlationId);
    if (!waiting) {
      logger.debug(`Dropped a result nobody waits for any more (RPC ${correlationId}).`);
      return;
    }
    let result: ResultMessage;
    try {
      result = decodeResult(content);
    } catch (error) {
      logger.warn(`Dropped a malformed result for RPC ${correlationId}: ${error instanceof MalformedMessage ? error.message : describeAmqpError(error)}.`);
      return;
    }
    if (waiting.resolve) waiting.resolve(result);
    else waiting.result = result;
  }

  /** Waits until the reply queue is consumed (at most `connect_timeout`). */
  async #ensureConsuming(): Promise<void> {
    this.#lease.get();
    this.#loop ??= this.#replyLoop();
    const deadline = Date.now() + this.#options.connectTimeoutMs;
    while (!this.#consuming) {
      if (this.#closing.signal.aborted) throw new LightbusError(ErrorCodes.CLOSED, 'The amqp result transport is closed.');
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new LightbusError(
          ErrorCodes.TRANSPORT_ERROR,
          `The reply queue ${this.#queue} is not ready after ${this.#options.connectTimeoutMs} ms${this.#lastError === undefined ? '' : ` (${describeAmqpError(this.#lastError)})`}. Check the RabbitMQ connection.`,
          { cause: this.#lastError, retryable: true },
        );
      }
      await this.#ready.wait(undefined, left); // close() notifies too
    }
  }

  /** Registers the call and returns its return path; the reply queue is consumed before this resolves. */
  async prepare(message: Pick<RpcMessage, 'id' | 'apiName' | 'procedureName'>): Promise<PendingResult> {
    await this.#ensureConsuming();
    const correlationId = message.id;
    const entry: Waiting = {};
    this.#waiting.set(correlationId, entry);
    const waiting = this.#waiting;
    return {
      returnPath: buildReturnPath(this.#queue, correlationId),
      wait: ({ timeoutMs, signal }) =>
        new Promise<ResultMessage>((resolve, reject) => {
          if (entry.result) {
            waiting.delete(correlationId);
            resolve(entry.result);
            return;
          }
          const cleanup = () => {
            clearTimeout(timer);
            entry.resolve = undefined;
            signal?.removeEventListener('abort', onAbort);
          };
          const onAbort = () => {
            cleanup();
            reject(new LightbusError(ErrorCodes.ABORTED, `Waiting for the result of RPC ${message.id} was aborted.`));
          };
          const timer = setTimeout(() => {
            cleanup();
            reject(new TimeoutError(`No result for RPC ${message.apiName}.${message.procedureName}() (${message.id}) within ${timeoutMs} ms.`));
          }, timeoutMs);
          entry.resolve = (result) => {
            cleanup();
            waiting.delete(correlationId);
            resolve(result);
          };
          if (signal?.aborted) onAbort();
          else signal?.addEventListener('abort', onAbort, { once: true });
        }),
      cancel: async () => {
        if (waiting.get(correlationId) === entry) waiting.delete(correlationId);
      },
    };
  }

  /** Publishes the result to the caller's reply queue, with the RPC id as correlation id. */
  async send(returnPath: string, result: ResultMessage, options: { rpc: RpcMessage }): Promise<void> {
    const target = parseReturnPath(returnPath);
    if (!target) {
      throw new LightbusError(
        ErrorCodes.RETURN_PATH_UNSUPPORTED,
        `The amqp result transport cannot write to "${returnPath}": it expects ${RETURN_PATH_SCHEME}://{queue}?id={id}.`,
      );
    }
    const deadline = options.rpc.deadline;
    const ttl = deadline === undefined ? 60_000 : Math.max(1000, Math.ceil(deadline - Date.now()));
    await this.#lease.get().publish('', target.queue, encodeResult(result), {
      correlationId: target.correlationId,
      expiration: String(ttl),
      contentType: CONTENT_TYPE,
      messageId: result.id,
      appId: 'lightbus',
    }, { timeoutMs: this.#options.connectTimeoutMs, what: `the result of RPC ${options.rpc.apiName}.${options.rpc.procedureName}()` });
  }

  /** Connects, waiting at most `connect_timeout` (on failure gives the connection up and throws). */
  open(): Promise<void> {
    return this.#lease.open();
  }

  /** Stops consuming (the reply queue goes with it) and releases the connection. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    this.#ready.notify();
    await this.#loop?.catch(() => undefined);
    await this.#lease.release();
  }
}
