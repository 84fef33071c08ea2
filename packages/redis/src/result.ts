/**
 * RPC results over Redis lists, as Python Lightbus does: the return path is
 * `redis+key://{api}.{proc}:result:{id}`; the worker `LPUSH`es the result blob there (with an
 * `EXPIRE` of `result_ttl`), the caller `BLPOP`s it. A result pushed before the caller waits is
 * still found, because it is a list.
 *
 * @module
 */
import {
  ErrorCodes,
  sleep,
  LightbusError,
  TimeoutError,
  type PendingResult,
  type ResultMessage,
  type ResultTransport,
  type RpcMessage,
  type TransportContext,
} from '@lightbus/core';
import { checkReplies, wrapError, type CommandClient } from './client.js';
import { ABORTED, RedisTransportBase, abortable } from './base.js';
import type { RedisTransportOptions } from './options.js';
import { MalformedMessage, RETURN_PATH_SCHEME, decodeResult, encodeResult, resultKey } from './wire.js';

/** Longest single BLPOP of a waiting caller, in seconds; the wait repeats until its timeout. */
const MAX_BLPOP_SECONDS = 5;
/** Idle blocking connections kept for later waits. */
const POOL_SIZE = 64;

/** The Redis result transport. Build it with {@link createRedisResultTransport}. */
export class RedisResultTransport extends RedisTransportBase implements ResultTransport {
  /** Declared capabilities: writes to `redis+key://` return paths. */
  readonly capabilities = { schemes: [RETURN_PATH_SCHEME] };
  readonly #idle: CommandClient[] = [];

  /**
   * @param options see {@link RedisTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: RedisTransportOptions, context: TransportContext) {
    super(options, context, 'result');
  }

  /** Builds the return path `redis+key://{api}.{proc}:result:{id}`. Nothing is written yet. */
  async prepare(message: Pick<RpcMessage, 'id' | 'apiName' | 'procedureName'>): Promise<PendingResult> {
    this.assertOpen();
    const key = resultKey(message.apiName, message.procedureName, message.id);
    let cancelled = false;
    const active = new Set<CommandClient>();
    return {
      returnPath: `${RETURN_PATH_SCHEME}://${key}`,
      wait: async ({ timeoutMs, signal }) => {
        const deadline = Date.now() + timeoutMs;
        // One controller per wait (AbortSignal.any per BLPOP is costly on the hot path).
        const stopAll = new AbortController();
        const onAbort = () => {
          stopAll.abort();
          for (const c of active) this.releaseBlocking(c, true);
          active.clear();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        const closing = this.closing.signal;
        closing.addEventListener('abort', onAbort, { once: true });
        try {
          for (;;) {
            if (signal?.aborted) throw new LightbusError(ErrorCodes.ABORTED, `Waiting for the result of RPC ${message.id} was aborted.`);
            this.assertOpen();
            if (cancelled) throw new LightbusError(ErrorCodes.ABORTED, `Waiting for the result of RPC ${message.id} was cancelled.`);
            const left = deadline - Date.now();
            if (left <= 0) {
              throw new TimeoutError(`No result for RPC ${message.apiName}.${message.procedureName}() (${message.id}) within ${timeoutMs} ms.`);
            }
            let conn: CommandClient;
            try {
              const stop = timed(stopAll.signal, left);
              try {
                conn = await this.#take(stop.signal);
              } finally {
                stop.dispose();
              }
            } catch (error) {
              if (LightbusError.isInstance(error) && error.code === ErrorCodes.ABORTED) continue; // reported at the top of the loop
              // Redis unreachable: it may come back before the deadline; try again shortly.
              this.context.logger.debug(`Waiting for the result of RPC ${message.id}: ${this.describe(error)}`);
              await sleep(Math.min(250, Math.max(0, deadline - Date.now())), signal);
              continue;
            }
            active.add(conn);
            const chunkMs = Math.min(left, MAX_BLPOP_SECONDS * 1000);
            // The BLPOP ends by its own timeout; when Redis does not answer at all (connection
            // down, the command parked until a reconnect), stop waiting for it a second later.
            const stop = timed(stopAll.signal, chunkMs + 1000);
            let reply: [string, string] | null | typeof ABORTED;
            try {
              reply = await abortable(conn.send(['BLPOP', key, (chunkMs / 1000).toFixed(3)]) as Promise<[string, string] | null>, stop.signal);
            } catch (error) {
              stop.dispose();
              active.delete(conn);
              this.releaseBlocking(conn, true);
              if (signal?.aborted || closing.aborted || cancelled || Date.now() >= deadline) continue; // reported at the top of the loop
              this.context.logger.debug(`Waiting for the result of RPC ${message.id}: ${this.describe(error)}`);
              await sleep(Math.min(250, Math.max(0, deadline - Date.now())), signal);
              continue;
            }
            stop.dispose();
            active.delete(conn);
            if (reply === ABORTED) {
              this.releaseBlocking(conn, true);
              continue; // reported at the top of the loop
            }
            this.#give(conn);
            if (!reply) continue;
            try {
              return decodeResult(reply[1]);
            } catch (error) {
              throw new LightbusError(
                ErrorCodes.MESSAGE_MALFORMED,
                `The result of RPC ${message.apiName}.${message.procedureName}() (${message.id}) could not be read: ${(error as MalformedMessage).message}.`,
                { details: { key } },
              );
            }
          }
        } finally {
          signal?.removeEventListener('abort', onAbort);
          closing.removeEventListener('abort', onAbort);
        }
      },
      cancel: async () => {
        cancelled = true;
        for (const c of active) this.releaseBlocking(c, true);
        active.clear();
      },
    };
  }

  /** Writes the result: `LPUSH {key} <blob>` and `EXPIRE {key} <result_ttl>` in one pipeline. */
  async send(returnPath: string, result: ResultMessage): Promise<void> {
    this.assertOpen();
    const prefix = `${RETURN_PATH_SCHEME}://`;
    if (!returnPath.startsWith(prefix) || returnPath.length === prefix.length) {
      throw new LightbusError(ErrorCodes.RETURN_PATH_UNSUPPORTED, `The redis result transport cannot write to "${returnPath}": it only writes ${prefix} return paths.`);
    }
    const key = returnPath.slice(prefix.length);
    try {
      checkReplies(
        await this.redis.pipeline([
          ['LPUSH', key, encodeResult(result)],
          ['EXPIRE', key, Math.max(1, Math.ceil(this.settings.resultTtlS))],
        ]),
        'sending an RPC result',
      );
    } catch (error) {
      throw wrapError(error, `sending the result of RPC ${result.rpcMessageId}`);
    }
  }

  async #take(signal: AbortSignal): Promise<CommandClient> {
    return this.#idle.pop() ?? (await this.acquireBlocking(signal));
  }

  #give(conn: CommandClient): void {
    if (this.closing.signal.aborted || this.#idle.length >= POOL_SIZE) this.releaseBlocking(conn);
    else this.#idle.push(conn);
  }

  /** Closes the pool of blocking connections and the shared connection. */
  override async close(): Promise<void> {
    this.#idle.length = 0;
    await super.close();
  }
}

/** Builds the Redis result transport. */
export function createRedisResultTransport(options: RedisTransportOptions, context: TransportContext): RedisResultTransport {
  return new RedisResultTransport(options, context);
}

/** A signal that aborts with `parent` or after `ms`; `dispose` clears the timer and the listener. */
function timed(parent: AbortSignal, ms: number): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  if (parent.aborted) controller.abort();
  else parent.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(onAbort, ms);
  return {
    signal: controller.signal,
    dispose: () => {
      clearTimeout(timer);
      parent.removeEventListener('abort', onAbort);
    },
  };
}
