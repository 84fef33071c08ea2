/**
 * One supervised RabbitMQ connection, shared by every transport built with the same connection
 * options. amqplib's own recovery wrapper reconnects to a single URL only; this supervisor tries
 * every configured URL in order, backs off between rounds, and tells the transports when a new
 * connection is up so they re-declare their topology and resume their consumers.
 *
 * It also owns the publisher: one confirm channel per connection, through which every publish
 * goes in call order and resolves when the broker confirmed it.
 *
 * @module
 */
import { connect, type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';
import { ErrorCodes, LightbusError, Notifier, TransportError, describeError, redactUrl, sleep, type Logger } from '@lightbus/core';
import type { ResolvedAmqpOptions } from './options.js';

/** Describes a client-library error without leaking secrets. */
export function describeAmqpError(error: unknown): string {
  return redactUrl(describeError(error));
}

/** Publishes on a confirm channel; the promise settles with the broker's confirm. */
function publishOn(channel: ConfirmChannel, exchange: string, key: string, content: Buffer, properties: Options.Publish): Promise<void> {
  const confirmed = new Promise<void>((resolve, reject) => {
    channel.publish(exchange, key, content, properties, (error: unknown) => (error ? reject(toError(error)) : resolve()));
  });
  confirmed.catch(() => undefined); // awaited by the caller; this only keeps an early rejection from being reported as unhandled
  return confirmed;
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(describeError(error));
}

/** AMQP reply code of a channel or connection error, when there is one. */
export function replyCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Options of {@link AmqpConnection.publish}. */
export interface PublishOptions {
  /** Time budget (waiting for a connection included), in ms. */
  timeoutMs: number;
  /** Exchanges to declare (once per connection) before publishing: name → type. */
  declare?: ReadonlyArray<readonly [string, 'topic' | 'direct' | 'fanout']>;
  /** Publish again after a lost connection, within the time budget (at-least-once senders only). */
  retry?: boolean;
  /** What is being published, for error messages. */
  what: string;
}

/** A supervised connection. Get one with {@link acquireConnection}. */
export class AmqpConnection {
  readonly #options: ResolvedAmqpOptions;
  readonly #logger: Logger;
  readonly #clientName: string;
  readonly #changed = new Notifier();
  #model: ChannelModel | undefined;
  #supervising = false;
  #closed = false;
  #lastError: unknown;
  #refs = 0;
  #confirm: Promise<ConfirmChannel> | undefined;
  /** The publisher channel once it is open, with the exchanges declared on it (the fast path). */
  #ready: { channel: ConfirmChannel; declared: Set<string> } | undefined;
  /** Publishes waiting in the slow path; while any wait, later ones queue behind them (order). */
  #queued = 0;
  #declared = new WeakMap<ChannelModel, Map<string, Promise<void>>>();
  #publishTail: Promise<unknown> = Promise.resolve();
  readonly #closing = new AbortController();

  /**
   * @param options resolved transport options
   * @param logger where connection events are logged
   * @param clientName shown as the connection name in RabbitMQ's management UI
   */
  constructor(options: ResolvedAmqpOptions, logger: Logger, clientName: string) {
    this.#options = options;
    this.#logger = logger;
    this.#clientName = clientName;
    if (options.connection) this.#adopt(options.connection, true);
  }

  /** True once {@link release} dropped the last reference. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Adds a reference (one per transport). */
  retain(): void {
    this.#refs++;
  }

  /**
   * The current connection, waiting (at most `timeoutMs`, default `connect_timeout`) for one.
   * Rejects with a {@link TransportError} naming the brokers tried and the last error.
   */
  async get(signal?: AbortSignal, timeoutMs = this.#options.connectTimeoutMs): Promise<ChannelModel> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#closed) throw new LightbusError(ErrorCodes.CLOSED, 'The RabbitMQ connection of this transport is closed. Create a new bus to use it again.');
      if (this.#model) return this.#model;
      if (signal?.aborted) throw new LightbusError(ErrorCodes.ABORTED, 'Waiting for the RabbitMQ connection was aborted.');
      if (this.#options.connection) {
        throw new TransportError(
          'The amqplib connection passed as `connection` has closed, and Lightbus cannot reopen a connection it did not open. Pass `url` (or `urls`) instead to get automatic reconnects.',
          { cause: this.#lastError },
        );
      }
      this.#supervise();
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new TransportError(
          `Could not connect to RabbitMQ at ${this.#options.targets.map((t) => t.label).join(', ')} within ${timeoutMs} ms${this.#lastError === undefined ? '' : ` (last error: ${describeAmqpError(this.#lastError)})`}. Check that RabbitMQ is running and that url/urls, username, password and vhost are right.`,
          { cause: this.#lastError },
        );
      }
      // release() notifies, so only the caller's signal is listened to (many callers may wait at once).
      await this.#changed.wait(signal, left);
    }
  }

  #supervise(): void {
    if (this.#supervising || this.#closed || this.#model) return;
    this.#supervising = true;
    void this.#connectLoop().finally(() => {
      this.#supervising = false;
    });
  }

  async #connectLoop(): Promise<void> {
    let round = 0;
    while (!this.#closed && !this.#model) {
      for (const target of this.#options.targets) {
        if (this.#closed) return;
        try {
          const model = await connect(target.connect, {
            ...this.#options.socket,
            timeout: Math.min(this.#options.connectTimeoutMs, 10_000),
            clientProperties: { connection_name: this.#clientName },
          });
          if (this.#closed) {
            await model.close().catch(() => undefined);
            return;
          }
          this.#adopt(model, false);
          this.#logger.info(`Connected to RabbitMQ at ${target.label}`);
          return;
        } catch (error) {
          this.#lastError = error;
          this.#logger.warn(`Could not connect to RabbitMQ at ${target.label}: ${describeAmqpError(error)}`);
        }
      }
      round++;
      this.#changed.notify(); // lets waiters see lastError and give up when past their deadline
      const delay = Math.min(10_000, 100 * 2 ** Math.min(round, 7)) * (0.8 + Math.random() * 0.4);
      await sleep(delay, this.#closing.signal);
    }
  }

  #adopt(model: ChannelModel, given: boolean): void {
    this.#model = model;
    model.on('error', (error: Error) => {
      this.#lastError = error;
      this.#logger.warn(`RabbitMQ connection error: ${describeAmqpError(error)}`);
    });
    model.on('blocked', (reason: string) => this.#logger.warn(`RabbitMQ blocked this connection (${reason}); publishing waits until it unblocks.`));
    model.on('unblocked', () => this.#logger.info('RabbitMQ unblocked the connection.'));
    model.on('close', (error?: Error) => {
      if (this.#model !== model) return;
      this.#model = undefined;
      this.#confirm = undefined;
      this.#ready = undefined;
      if (error) this.#lastError = error;
      this.#changed.notify();
      if (this.#closed) return;
      this.#logger.warn(
        given
          ? `The amqplib connection passed to Lightbus closed${error ? `: ${describeAmqpError(error)}` : ''}. Lightbus cannot reopen it.`
          : `Lost the RabbitMQ connection${error ? `: ${describeAmqpError(error)}` : ''}; reconnecting.`,
      );
      if (!given) this.#supervise();
    });
    this.#changed.notify();
  }

  /** Declares an exchange once per connection (cached), on the publisher channel. */
  async #ensureExchange(model: ChannelModel, channel: ConfirmChannel, name: string, type: string): Promise<void> {
    let cache = this.#declared.get(model);
    if (!cache) {
      cache = new Map();
      this.#declared.set(model, cache);
    }
    let declared = cache.get(name);
    if (!declared) {
      declared = channel.assertExchange(name, type, { durable: true }).then(() => undefined);
      cache.set(name, declared);
      declared.catch(() => cache.delete(name));
    }
    await declared;
  }

  async #confirmChannel(model: ChannelModel): Promise<ConfirmChannel> {
    if (!this.#confirm) {
      const created = model.createConfirmChannel().then((channel) => {
        channel.on('error', (error: Error) => this.#logger.warn(`RabbitMQ publisher channel error: ${describeAmqpError(error)}`));
        channel.on('close', () => {
          if (this.#confirm === created) this.#confirm = undefined;
          if (this.#ready?.channel === channel) this.#ready = undefined;
          this.#declared.delete(model);
        });
        return channel;
      });
      this.#confirm = created;
      created.catch(() => {
        if (this.#confirm === created) this.#confirm = undefined;
      });
    }
    return this.#confirm;
  }

  /**
   * Publishes one message and resolves when the broker confirmed it. Publishes leave in the
   * order of the calls. Rejects with a {@link TransportError} (retryable) when the broker refused
   * it, the connection dropped, or the time budget ran out.
   */
  async publish(exchange: string, key: string, content: Buffer, properties: Options.Publish, options: PublishOptions): Promise<void> {
    const deadline = Date.now() + options.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#publishOnce(exchange, key, content, properties, options, deadline);
        return;
      } catch (error) {
        if (LightbusError.isInstance(error) && (error.code === ErrorCodes.CLOSED || error.code === ErrorCodes.TRANSPORT_ERROR)) throw error;
        const left = deadline - Date.now();
        // Refused for good (access, a missing or mismatched exchange): trying again will not help.
        const refused = [403, 404, 406].includes(replyCode(error) ?? 0);
        if (!options.retry || refused || left <= 0 || this.#closed) {
          throw new TransportError(`RabbitMQ did not take ${options.what}: ${describeAmqpError(error)}. It was not confirmed; try again.`, { cause: error });
        }
        this.#logger.warn(`Publishing ${options.what} failed (${describeAmqpError(error)}); trying again (attempt ${attempt + 1}).`);
        await sleep(Math.min(left, 50 * attempt), this.#closing.signal);
      }
    }
  }

  async #publishOnce(
    exchange: string,
    key: string,
    content: Buffer,
    properties: Options.Publish,
    options: PublishOptions,
    deadline: number,
  ): Promise<void> {
    const declare = options.declare ?? [];
    const ready = this.#ready;
    let confirmed: Promise<void>;
    if (this.#queued === 0 && ready && declare.every(([name]) => ready.declared.has(name))) {
      // Fast path: the channel is open and the exchanges are declared; nothing waits before us.
      confirmed = publishOn(ready.channel, exchange, key, content, properties);
    } else {
      // Slow path: each publish waits for the previous one to have been handed to the channel,
      // so publishes from one process leave in call order even while a channel is (re)created.
      this.#queued++;
      const step = this.#publishTail.then(async () => {
        const model = await this.get(undefined, Math.max(1, deadline - Date.now()));
        const channel = await this.#confirmChannel(model);
        for (const [name, type] of declare) await this.#ensureExchange(model, channel, name, type);
        if (this.#ready?.channel !== channel) this.#ready = { channel, declared: new Set() };
        for (const [name] of declare) this.#ready.declared.add(name);
        // Wrapped so that the chain moves on once the message is handed to the channel, not when
        // it is confirmed: publishes are pipelined, confirms arrive in their own time.
        return { confirmed: publishOn(channel, exchange, key, content, properties) };
      });
      this.#publishTail = step.then(
        () => undefined,
        () => undefined,
      );
      try {
        ({ confirmed } = await step);
      } finally {
        this.#queued--;
      }
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        confirmed,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`no confirm within the time budget`)), Math.max(1, deadline - Date.now()));
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drops one reference; the last one closes the connection (unless it was given by the user). */
  async release(): Promise<void> {
    this.#refs = Math.max(0, this.#refs - 1);
    if (this.#refs > 0 || this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    pool.delete(this.#options.connectionKey);
    const model = this.#model;
    this.#model = undefined;
    this.#changed.notify();
    if (model && !this.#options.connection) await model.close().catch(() => undefined);
  }
}

const pool = new Map<string, AmqpConnection>();

/**
 * The shared connection for these options (one per distinct connection settings in a process),
 * with one more reference. Call {@link AmqpConnection.release} when done.
 */
export function acquireConnection(options: ResolvedAmqpOptions, logger: Logger, clientName: string): AmqpConnection {
  let connection = pool.get(options.connectionKey);
  if (!connection || connection.closed) {
    connection = new AmqpConnection(options, logger, clientName);
    pool.set(options.connectionKey, connection);
  }
  connection.retain();
  return connection;
}

/**
 * One transport's lease on the shared connection: taken on first use, given back on close (or
 * when `open()` fails). The three AMQP transports hold one each.
 */
export class ConnectionLease {
  #connection: AmqpConnection | undefined;

  /**
   * @param options resolved transport options (they pick the shared connection)
   * @param logger where the connection logs
   * @param clientName shown in RabbitMQ's connection list
   * @param closing aborts when the transport closes
   * @param role `event`, `rpc` or `result`, for the error after close
   */
  constructor(
    private readonly options: ResolvedAmqpOptions,
    private readonly logger: Logger,
    private readonly clientName: string,
    private readonly closing: AbortSignal,
    private readonly role: string,
  ) {}

  /** The connection, acquired on first use. Throws `LB_CLOSED` once the transport is closed. */
  get(): AmqpConnection {
    if (this.closing.aborted) throw new LightbusError(ErrorCodes.CLOSED, `The amqp ${this.role} transport is closed. Create a new bus to use it again.`);
    this.#connection ??= acquireConnection(this.options, this.logger, this.clientName);
    return this.#connection;
  }

  /** Connects, waiting at most `connect_timeout`; on failure, gives the connection up and throws. */
  async open(): Promise<void> {
    const connection = this.get();
    try {
      await connection.get();
    } catch (error) {
      this.#connection = undefined;
      await connection.release();
      throw error;
    }
  }

  /** Gives the connection back (the last holder closes it). Idempotent. */
  async release(): Promise<void> {
    const connection = this.#connection;
    this.#connection = undefined;
    await connection?.release();
  }
}
