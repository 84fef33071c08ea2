/**
 * What every Redis transport shares: its command connection, its blocking connections, open and
 * close, and a backoff for loops that hit errors.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { ErrorCodes, LightbusError, redactUrl, type TransportContext } from '@lightbus/core';
import { createCommandClient, wrapError, type CommandClient, type DuplicateOptions } from './client.js';
import { resolveOptions, type RedisTransportOptions, type ResolvedRedisOptions } from './options.js';

/** The common part of the four Redis transports. */
export abstract class RedisTransportBase {
  /** Options with defaults applied. */
  protected readonly settings: ResolvedRedisOptions;
  /** The service and process names and the logger. */
  protected readonly context: TransportContext;
  /** The shared (non-blocking) connection: commands of one tick leave in one write. */
  protected readonly redis: CommandClient;
  /** Aborts when the transport closes. */
  protected readonly closing = new AbortController();
  readonly #blocking = new Set<CommandClient>();
  readonly #role: string;
  #opened: Promise<void> | undefined;

  /**
   * @param options the transport options
   * @param context service and process names, logger
   * @param role shown in logs and errors
   */
  constructor(options: RedisTransportOptions, context: TransportContext, role: string) {
    // Every waiting caller listens for the close: many concurrent calls are normal, not a leak.
    setMaxListeners(0, this.closing.signal);
    this.settings = resolveOptions(options);
    this.context = context;
    this.#role = role;
    this.redis = createCommandClient(options, context.logger, role);
  }

  /** Connects the shared connection. Safe to call more than once. */
  open(): Promise<void> {
    this.#opened ??= this.redis.connect().catch((error: unknown) => {
      this.#opened = undefined;
      throw wrapError(error, `connecting the ${this.#role} transport`);
    });
    return this.#opened;
  }

  /** Fails with LB_CLOSED after close(). */
  protected assertOpen(): void {
    if (this.closing.signal.aborted) {
      throw new LightbusError(ErrorCodes.CLOSED, `The redis ${this.#role} transport is closed. Create a new bus (or transport) to use Redis again.`);
    }
  }

  /**
   * A dedicated, connected connection for blocking commands; released with
   * {@link releaseBlocking}. Gives up (and drops the connection) when `signal` aborts, so a loop
   * stops promptly even while Redis is unreachable. `options` go to {@link CommandClient.duplicate}.
   */
  protected async acquireBlocking(signal?: AbortSignal, options?: DuplicateOptions): Promise<CommandClient> {
    this.assertOpen();
    const client = this.redis.duplicate(options);
    this.#blocking.add(client);
    const stop = signal ? AbortSignal.any([signal, this.closing.signal]) : this.closing.signal;
    try {
      const connected = await abortable(client.connect(), stop);
      if (connected === ABORTED) throw new LightbusError(ErrorCodes.ABORTED, `Opening a blocking connection for the redis ${this.#role} transport was aborted.`);
      return client;
    } catch (error) {
      this.releaseBlocking(client, true);
      if (LightbusError.isInstance(error)) throw error;
      throw wrapError(error, `opening a blocking connection for the ${this.#role} transport`);
    }
  }

  /** Closes a blocking connection (at once when `destroy`, e.g. to end a blocking command). */
  protected releaseBlocking(client: CommandClient, destroy = false): void {
    this.#blocking.delete(client);
    if (destroy) client.destroy();
    else void client.close().catch(() => client.destroy());
  }

  /** Ends every loop and closes every connection this transport opened. Idempotent. */
  async close(): Promise<void> {
    if (this.closing.signal.aborted) return;
    this.closing.abort();
    for (const client of this.#blocking) client.destroy();
    this.#blocking.clear();
    await this.redis.close();
  }

  /** Describes an error for a log line without secrets. */
  protected describe(error: unknown): string {
    return redactUrl(error instanceof Error ? error.message : String(error));
  }
}

/** What {@link abortable} resolves with when the signal aborted first. */
export const ABORTED: unique symbol = Symbol('aborted');

/**
 * Waits for `promise`, or for `signal` to abort, whichever comes first (then resolves with
 * {@link ABORTED}; the promise goes on and its outcome is ignored).
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | typeof ABORTED> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.resolve(ABORTED);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** Exponential backoff for loops: 100 ms doubling to 5 s. */
export function backoffMs(attempt: number): number {
  return Math.min(5000, 100 * 2 ** Math.min(attempt, 6));
}
