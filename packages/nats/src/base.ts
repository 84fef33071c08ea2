/**
 * What the four NATS transports share: options, the connection lease, and error wrapping.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import type { NatsConnection } from 'nats';
import { ErrorCodes, LightbusError, TransportError, describeError, type TransportContext } from '@lightbus/core';
import { acquireConnection, type ConnectionLease } from './connection.js';
import { resolveOptions, type NatsTransportOptions, type ResolvedNatsOptions } from './options.js';

/** Hides credentials in URLs (`nats://user:pass@host`, `nats://token@host`) inside a text. */
export function redactSecrets(text: string): string {
  return text.replace(/(\w[\w+.-]*:\/\/)[^@\s/]+@/g, '$1***@');
}

/** Wraps a nats.js error in a {@link TransportError} saying what failed. Lightbus errors pass through. */
export function wrapError(what: string, error: unknown, hint = ''): LightbusError {
  if (LightbusError.isInstance(error)) return error;
  return new TransportError(`NATS: ${what} failed: ${redactSecrets(describeError(error))}.${hint ? ` ${hint}` : ''}`, { cause: error });
}

/** The base of the NATS transports: opens (or borrows) the connection and gives it back on close. */
export abstract class NatsTransportBase {
  /** The options as given. */
  protected readonly options: NatsTransportOptions;
  /** The options with defaults. */
  protected readonly resolved: ResolvedNatsOptions;
  /** Service name, process name, logger. */
  protected readonly context: TransportContext;
  /** Aborted by close(): ends every loop of this transport. */
  protected readonly closing = new AbortController();
  #lease: Promise<ConnectionLease> | undefined;
  #nc: NatsConnection | undefined;
  readonly #role: string;
  /** Publishes of this tick, made together at its end (see {@link publishAtTickEnd}). */
  #outbox: Array<{ nc: NatsConnection; subject: string; data: Uint8Array; reply: string | undefined; resolve: () => void; reject: (error: unknown) => void }> = [];

  /**
   * @param role the role, for messages
   * @param options see {@link NatsTransportOptions}
   * @param context service and process names, logger
   */
  constructor(role: string, options: NatsTransportOptions, context: TransportContext) {
    this.#role = role;
    this.options = options;
    this.resolved = resolveOptions(options);
    this.context = context;
    // Every waiting caller and consume loop listens to it.
    setMaxListeners(0, this.closing.signal);
  }

  /** Connects (or joins the shared connection). Idempotent. */
  async open(): Promise<void> {
    await this.connection();
  }

  /** The connection, opened on first use. */
  protected async connection(): Promise<NatsConnection> {
    if (this.#nc && !this.#nc.isClosed()) return this.#nc;
    if (this.closing.signal.aborted) throw this.closedError();
    if (this.#nc && !this.options.connection) {
      // Our pooled connection was closed for good (the client gave up): take a fresh one.
      const old = this.#lease;
      this.#lease = undefined;
      this.#nc = undefined;
      await (await old?.catch(() => undefined))?.release();
      this.context.logger.warn('The NATS connection was closed; opening a new one');
    }
    this.#lease ??= acquireConnection(this.options, `lightbus ${this.context.serviceName} ${this.context.processName}`, this.context.logger);
    let lease: ConnectionLease;
    try {
      lease = await this.#lease;
    } catch (error) {
      this.#lease = undefined;
      throw error;
    }
    this.#nc = lease.nc;
    return lease.nc;
  }

  /**
   * Publishes at the end of this tick, with every other publish of the tick. The NATS client
   * writes what it buffered one microtask after the first publish, so publishes made from many
   * async continuations (the results of a burst of calls, say) would each start a socket write
   * of their own; made together, they share one. Resolves once handed to the client.
   */
  protected publishAtTickEnd(nc: NatsConnection, subject: string, data: Uint8Array, reply?: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#outbox.push({ nc, subject, data, reply, resolve, reject });
      if (this.#outbox.length === 1) {
        process.nextTick(() => {
          const batch = this.#outbox;
          this.#outbox = [];
          for (const p of batch) {
            try {
              p.nc.publish(p.subject, p.data, p.reply === undefined ? undefined : { reply: p.reply });
              p.resolve();
            } catch (error) {
              p.reject(error);
            }
          }
        });
      }
    });
  }

  /** The connection when already open (lets a caller act without yielding to the event loop). */
  protected get openConnection(): NatsConnection | undefined {
    return this.#nc && !this.#nc.isClosed() ? this.#nc : undefined;
  }

  /** The error thrown when the transport is used after close(). */
  protected closedError(): LightbusError {
    return new LightbusError(ErrorCodes.CLOSED, `The NATS ${this.#role} transport is closed. Create a new bus to use it again.`);
  }

  /** Ends the transport's loops and gives the connection back. Idempotent. */
  async close(): Promise<void> {
    if (this.closing.signal.aborted) return;
    this.closing.abort();
    await this.beforeRelease();
    const lease = this.#lease;
    this.#lease = undefined;
    this.#nc = undefined;
    if (lease) await (await lease.catch(() => undefined))?.release();
  }

  /** Subclasses release their own resources here (subscriptions), before the connection goes. */
  protected async beforeRelease(): Promise<void> {}
}
