/**
 * RPC results over NATS reply inboxes. Each result transport subscribes once to a wildcard of
 * its own fresh inbox (`_INBOX.<nuid>.*`); `prepare()` hands out one subject under it per call
 * (`_INBOX.<nuid>.<n>`), already listened to before the call is sent, and returns the return
 * path `nats+inbox://_INBOX.<nuid>.<n>`. The worker's `send()` publishes the result there.
 *
 * Nothing is stored on the broker: a result whose caller stopped listening is dropped, so the
 * result's time to live is simply how long the caller waits.
 *
 * @module
 */
import { createInbox, type Msg, type Subscription } from 'nats';
import {
  ErrorCodes,
  LightbusError,
  TimeoutError,
  TransportError,
  describeError,
  type PendingResult,
  type ResultMessage,
  type ResultTransport,
  type RpcMessage,
  type TransportContext,
} from '@lightbus/core';
import { NatsTransportBase, wrapError } from './base.js';
import { rpcSubject, type NatsTransportOptions } from './options.js';
import { decodeResult, encodeResult } from './wire.js';

/** The return-path scheme of NATS inboxes. */
export const INBOX_SCHEME = 'nats+inbox';

interface Waiting {
  apiName: string;
  procedureName: string;
  id: string;
  outcome?: { result: ResultMessage } | { error: LightbusError };
  settle?: () => void;
}

/** Results over NATS inboxes, one wildcard subscription per transport. */
export class NatsResultTransport extends NatsTransportBase implements ResultTransport {
  /** Declared capabilities. */
  readonly capabilities = { schemes: [INBOX_SCHEME] as const };
  readonly #waiting = new Map<string, Waiting>();
  #mux: Promise<{ prefix: string; sub: Subscription }> | undefined;
  #counter = 0;

  /**
   * @param options see {@link NatsTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: NatsTransportOptions, context: TransportContext) {
    super('result', options, context);
  }

  /** Connects and subscribes to this transport's inbox wildcard. */
  override async open(): Promise<void> {
    await this.#ensureMux();
  }

  async #ensureMux(): Promise<{ prefix: string; sub: Subscription }> {
    const current = await this.#mux?.catch(() => undefined);
    // A subscription on a connection that was closed for good is replaced on the new one.
    if (current?.sub.isClosed()) this.#mux = undefined;
    this.#mux ??= (async () => {
      const nc = await this.connection();
      const prefix = createInbox();
      let sub: Subscription;
      try {
        sub = nc.subscribe(`${prefix}.*`, { callback: (error, msg) => (error ? undefined : this.#onMessage(msg)) });
        await nc.flush();
      } catch (error) {
        throw wrapError('subscribing to the result inbox', error);
      }
      return { prefix, sub };
    })();
    this.#mux.catch(() => (this.#mux = undefined));
    return this.#mux;
  }

  #onMessage(msg: Msg): void {
    const waiting = this.#waiting.get(msg.subject);
    if (!waiting || waiting.outcome) return; // nobody waits (any more): the result is dropped
    if (msg.headers?.code === 503) {
      // "No responders": the call was published with this inbox as reply, and no worker listens.
      waiting.outcome = {
        error: new TransportError(
          `No worker is serving the API "${waiting.apiName}": nothing subscribes to ${rpcSubject(this.resolved, waiting.apiName)}, so RPC ${waiting.apiName}.${waiting.procedureName}() was dropped. Start a worker for the service that registers the API (\`lightbus run\`), with the same NATS subject_prefix.`,
          { retryable: true, details: { apiName: waiting.apiName, procedureName: waiting.procedureName, id: waiting.id } },
        ),
      };
    } else {
      try {
        waiting.outcome = { result: decodeResult(msg.data) };
      } catch (error) {
        this.context.logger.warn(`Dropped a result on ${msg.subject}: ${describeError(error)}`);
        return;
      }
    }
    waiting.settle?.();
  }

  /** Sets up a fresh inbox subject for one call (listened to before the call goes out). */
  async prepare(message: Pick<RpcMessage, 'id' | 'apiName' | 'procedureName'>): Promise<PendingResult> {
    if (this.closing.signal.aborted) throw this.closedError();
    const { prefix } = await this.#ensureMux();
    const subject = `${prefix}.${(++this.#counter).toString(36)}`;
    const waiting: Waiting = { apiName: message.apiName, procedureName: message.procedureName, id: message.id };
    this.#waiting.set(subject, waiting);
    const waitingMap = this.#waiting;
    const closing = this.closing.signal;
    const closedError = () => this.closedError();
    return {
      returnPath: `${INBOX_SCHEME}://${subject}`,
      wait: ({ timeoutMs, signal }) =>
        new Promise<ResultMessage>((resolve, reject) => {
          const finish = () => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            closing.removeEventListener('abort', onClose);
            waiting.settle = undefined;
            const outcome = waiting.outcome;
            if (!outcome) return;
            waitingMap.delete(subject);
            if ('result' in outcome) resolve(outcome.result);
            else reject(outcome.error);
          };
          const onAbort = () => {
            waiting.outcome ??= { error: new LightbusError(ErrorCodes.ABORTED, `Waiting for the result of RPC ${message.apiName}.${message.procedureName}() (${message.id}) was aborted.`) };
            finish();
          };
          const onClose = () => {
            waiting.outcome ??= { error: closedError() };
            finish();
          };
          const timer = setTimeout(() => {
            waiting.outcome ??= { error: new TimeoutError(`No result for RPC ${message.apiName}.${message.procedureName}() (${message.id}) within ${timeoutMs} ms.`) };
            finish();
          }, timeoutMs);
          waiting.settle = finish;
          if (waiting.outcome) return finish();
          if (signal?.aborted) return onAbort();
          if (closing.aborted) return onClose();
          signal?.addEventListener('abort', onAbort, { once: true });
          closing.addEventListener('abort', onClose, { once: true });
        }),
      cancel: async () => {
        waitingMap.delete(subject);
      },
    };
  }

  /** Publishes `result` to the inbox named by `returnPath`. Nobody listening: it is dropped. */
  async send(returnPath: string, result: ResultMessage, _options: { rpc: RpcMessage }): Promise<void> {
    const prefix = `${INBOX_SCHEME}://`;
    const subject = returnPath.startsWith(prefix) ? returnPath.slice(prefix.length) : '';
    if (subject === '' || /[\s*>]/.test(subject)) {
      throw new LightbusError(ErrorCodes.RETURN_PATH_UNSUPPORTED, `The NATS result transport cannot write to "${returnPath}": expected ${prefix}<inbox subject>.`);
    }
    const nc = this.openConnection ?? (await this.connection());
    try {
      await this.publishAtTickEnd(nc, subject, encodeResult(result));
    } catch (error) {
      throw wrapError(`publishing the result of RPC ${result.rpcMessageId}`, error);
    }
  }

  /** Unsubscribes the inbox; callers still waiting get an `LB_CLOSED` error. */
  protected override async beforeRelease(): Promise<void> {
    const mux = await this.#mux?.catch(() => undefined);
    mux?.sub.unsubscribe();
    this.#waiting.clear();
  }
}
