/**
 * RPC over core NATS: a call to API `{api}` is published to `{subject_prefix}.rpc.{api}`; workers
 * subscribe in the queue group of the same name, so each call reaches one worker. There is no
 * broker-side queue: a call nobody is subscribed to is dropped at once (at-most-once), and the
 * deadline travels in the payload so a worker drops calls that waited past it.
 *
 * When the caller's return path is a NATS inbox (`nats+inbox://...`), the call is published
 * with that inbox as its reply subject. The server then answers "no responders" on the inbox when
 * no worker is subscribed, and the caller fails at once instead of waiting for its timeout.
 *
 * @module
 */
import type { Msg, NatsConnection, Subscription } from 'nats';
import { Notifier, describeError, type RpcCallOptions, type RpcConsumeOptions, type RpcMessage, type RpcTransport, type TransportContext } from '@lightbus/core';
import { NatsTransportBase, wrapError } from './base.js';
import { rpcSubject, type NatsTransportOptions } from './options.js';
import { INBOX_SCHEME } from './result.js';
import { decodeRpc, encodeRpc } from './wire.js';

/** RPC calls over core NATS subjects with one queue group per API. */
export class NatsRpcTransport extends NatsTransportBase implements RpcTransport {
  /** Declared capabilities: the worker-side transport drops calls past their deadline. */
  readonly capabilities = { deadlines: true };

  /**
   * @param options see {@link NatsTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: NatsTransportOptions, context: TransportContext) {
    super('rpc', options, context);
  }

  /**
   * Publishes one call. Resolves once it is written to the connection: core NATS has no broker
   * acknowledgement, so a call nobody serves is simply dropped (at-most-once).
   */
  async call(message: RpcMessage, options: RpcCallOptions): Promise<void> {
    const nc = this.openConnection ?? (await this.connection());
    const withDeadline = message.deadline === undefined ? { ...message, deadline: Date.now() + options.timeoutMs } : message;
    const reply = message.returnPath.startsWith(`${INBOX_SCHEME}://`) ? message.returnPath.slice(INBOX_SCHEME.length + 3) : undefined;
    try {
      await this.publishAtTickEnd(nc, rpcSubject(this.resolved, message.apiName), encodeRpc(withDeadline), reply);
    } catch (error) {
      throw wrapError(`publishing RPC ${message.apiName}.${message.procedureName}()`, error, 'Check the NATS connection.');
    }
  }

  /**
   * Subscribes to the calls of `apiNames` (queue group per API) and yields them one at a time
   * until `signal` aborts. Calls past their deadline and malformed calls are dropped with a log
   * line. On abort, calls received but not yet yielded are published again, so another worker of
   * the queue group can take them.
   */
  async *consume(apiNames: readonly string[], options: RpcConsumeOptions): AsyncIterable<RpcMessage> {
    const stop = AbortSignal.any([options.signal, this.closing.signal]);
    if (stop.aborted) return;
    const nc: NatsConnection = this.openConnection ?? (await this.connection());
    const queue: Msg[] = [];
    const notifier = new Notifier();
    const { logger } = this.context;
    const subs: Subscription[] = [];
    try {
      for (const api of new Set(apiNames)) {
        const subject = rpcSubject(this.resolved, api);
        subs.push(
          nc.subscribe(subject, {
            queue: subject,
            callback: (error, msg) => {
              if (error) {
                logger.error(`NATS subscription to ${subject} failed: ${describeError(error)}`);
                return;
              }
              queue.push(msg);
              notifier.notify();
            },
          }),
        );
      }
    } catch (error) {
      for (const s of subs) s.unsubscribe();
      throw wrapError(`subscribing to RPC calls for ${apiNames.join(', ')}`, error);
    }
    try {
      while (!stop.aborted) {
        const msg = queue.shift();
        if (!msg) {
          await notifier.wait(stop);
          continue;
        }
        let call: RpcMessage;
        try {
          call = decodeRpc(msg.data);
        } catch (error) {
          logger.warn(`Dropped a call on ${msg.subject}: ${describeError(error)}`);
          continue;
        }
        if (call.deadline !== undefined && call.deadline < Date.now()) {
          logger.debug(`RPC ${call.apiName}.${call.procedureName}() arrived after its deadline; dropped`, { id: call.id });
          continue;
        }
        yield call;
      }
    } finally {
      for (const s of subs) s.unsubscribe();
      // Hand calls that were received but never started back to the queue group.
      const left = queue.splice(0);
      if (!nc.isClosed()) {
        for (const msg of left) {
          try {
            nc.publish(msg.subject, msg.data, msg.reply ? { reply: msg.reply } : undefined);
          } catch {
            break;
          }
        }
      }
    }
  }
}
