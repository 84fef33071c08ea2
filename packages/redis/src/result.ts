/**
 * RPC results over Redis lists, as Python Lightbus does: the return path is
 * `redis+key://{api}.{proc}:result:{id}`; the worker `LPUSH`es the result blob there (with an
 * `EXPIRE` of `result_ttl`), the caller `BLPOP`s it. A result pushed before the caller waits is
 * still found, because it is a list. How the caller waits is ours: the callers of one process
 * share one blocking connection (`./result-mux.ts`).
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
import { RedisScript, wrapError, type Command, type CommandClient } from './client.js';
import { TickBatcher } from './batch.js';
import { ABORTED, RedisTransportBase, abortable } from './base.js';
import type { RedisTransportOptions } from './options.js';
import { ResultMultiplexer, type Watch } from './result-mux.js';
import { MalformedMessage, RETURN_PATH_SCHEME, RPC_RESULTS_SCRIPT, decodeResult, encodeResult, resultKey } from './wire.js';

const RPC_RESULTS = new RedisScript(RPC_RESULTS_SCRIPT);

/** Longest single BLPOP of a caller waiting on its own connection, in seconds; repeated until its timeout. */
const MAX_BLPOP_SECONDS = 5;
/** Idle blocking connections kept for later waits on their own connection. */
const POOL_SIZE = 64;

/** What a pending result shares between its wait() and cancel(). */
interface WaitState {
  readonly key: string;
  readonly message: Pick<RpcMessage, 'id' | 'apiName' | 'procedureName'>;
  /** The multiplexer's watch of the key (undefined on a cluster, or when the multiplexer is off). */
  watch: Watch | undefined;
  cancelled: boolean;
  /** Blocking connections of waits on their own connection (made when first needed). */
  active: Set<CommandClient> | undefined;
}

/**
 * The Redis result transport. Build it with {@link createRedisResultTransport}.
 *
 * Callers of one process wait on one blocking connection (the result multiplexer in `result-mux.ts`): one
 * `BLPOP` over every awaited result key. On a Redis Cluster, or when Redis refuses `CLIENT ID` /
 * `CLIENT UNBLOCK`, each caller waits on a connection of its own (kept in a pool).
 */
export class RedisResultTransport extends RedisTransportBase implements ResultTransport {
  /** Declared capabilities: writes to `redis+key://` return paths. */
  readonly capabilities = { schemes: [RETURN_PATH_SCHEME] };
  readonly #idle: CommandClient[] = [];
  readonly #mux: ResultMultiplexer | undefined;
  /** Results sent in the same tick go as one script call. */
  readonly #results: TickBatcher;

  /**
   * @param options see {@link RedisTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: RedisTransportOptions, context: TransportContext) {
    super(options, context, 'result');
    this.#results = new TickBatcher({ redis: this.redis, script: RPC_RESULTS, logger: context.logger, label: 'RPC results' });
    if (!this.redis.cluster) {
      this.#mux = new ResultMultiplexer({
        redis: this.redis,
        closing: this.closing.signal,
        logger: context.logger,
        resultTtlS: this.settings.resultTtlS,
        acquire: (signal) => this.acquireBlocking(signal, { reconnect: false }),
        release: (conn) => this.releaseBlocking(conn, true),
        describe: (error) => this.describe(error),
      });
    }
  }

  /**
   * Builds the return path `redis+key://{api}.{proc}:result:{id}` and starts watching that key
   * (a result that arrives before wait() is kept). Nothing is written to Redis.
   */
  async prepare(message: Pick<RpcMessage, 'id' | 'apiName' | 'procedureName'>): Promise<PendingResult> {
    this.assertOpen();
    const key = resultKey(message.apiName, message.procedureName, message.id);
    const state: WaitState = { key, message, watch: this.#mux?.watch(key), cancelled: false, active: undefined };
    return {
      returnPath: `${RETURN_PATH_SCHEME}://${key}`,
      wait: (options) => this.#wait(state, options),
      cancel: async () => {
        state.cancelled = true;
        if (state.watch) this.#mux!.unwatch(state.watch);
        if (state.active) {
          for (const c of state.active) this.releaseBlocking(c, true);
          state.active.clear();
        }
      },
    };
  }

  async #wait(state: WaitState, { timeoutMs, signal }: { timeoutMs: number; signal?: AbortSignal }): Promise<ResultMessage> {
    const deadline = Date.now() + timeoutMs;
    this.#checkWaiting(state, signal);
    if (state.watch) {
      const outcome = await this.#mux!.wait(state.watch, timeoutMs, signal);
      switch (outcome.kind) {
        case 'result':
          return this.#decode(state, outcome.blob);
        case 'malformed':
          throw this.#malformed(state, outcome.reason);
        case 'timeout':
          throw this.#timeout(state, timeoutMs);
        case 'fallback':
          break; // Redis refused what the multiplexer needs: wait on a connection of our own
        default:
          this.#checkWaiting(state, signal); // aborted, cancelled, closed
          throw this.#timeout(state, timeoutMs); // not reached
      }
    }
    return this.#waitAlone(state, deadline, timeoutMs, signal);
  }

  /** Throws when the wait may not go on: aborted, transport closed, or cancelled. */
  #checkWaiting(state: WaitState, signal: AbortSignal | undefined): void {
    if (signal?.aborted) throw new LightbusError(ErrorCodes.ABORTED, `Waiting for the result of RPC ${state.message.id} was aborted.`);
    this.assertOpen();
    if (state.cancelled) throw new LightbusError(ErrorCodes.ABORTED, `Waiting for the result of RPC ${state.message.id} was cancelled.`);
  }

  #timeout(state: WaitState, timeoutMs: number): TimeoutError {
    const { message } = state;
    return new TimeoutError(`No result for RPC ${message.apiName}.${message.procedureName}() (${message.id}) within ${timeoutMs} ms.`);
  }

  #malformed(state: WaitState, reason: string): LightbusError {
    const { message, key } = state;
    return new LightbusError(ErrorCodes.MESSAGE_MALFORMED, `The result of RPC ${message.apiName}.${message.procedureName}() (${message.id}) could not be read: ${reason}.`, {
      details: { key },
    });
  }

  #decode(state: WaitState, blob: string): ResultMessage {
    try {
      return decodeResult(blob);
    } catch (error) {
      throw this.#malformed(state, (error as MalformedMessage).message);
    }
  }

  /** Waits on a blocking connection of its own: `BLPOP {key}`, repeated until the deadline. */
  async #waitAlone(state: WaitState, deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<ResultMessage> {
    const { message, key } = state;
    const active = (state.active ??= new Set());
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
        this.#checkWaiting(state, signal);
        const left = deadline - Date.now();
        if (left <= 0) throw this.#timeout(state, timeoutMs);
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
          if (active.delete(conn)) this.releaseBlocking(conn, true);
          if (signal?.aborted || closing.aborted || state.cancelled || Date.now() >= deadline) continue; // reported at the top of the loop
          this.context.logger.debug(`Waiting for the result of RPC ${message.id}: ${this.describe(error)}`);
          await sleep(Math.min(250, Math.max(0, deadline - Date.now())), signal);
          continue;
        }
        stop.dispose();
        // Not ours any more when cancel() or an abort released it meanwhile: it is closed and
        // must not go back to the pool.
        const stillOurs = active.delete(conn);
        if (reply === ABORTED || !stillOurs) {
          if (stillOurs) this.releaseBlocking(conn, true);
          continue; // reported at the top of the loop
        }
        this.#give(conn);
        if (!reply) continue;
        return this.#decode(state, reply[1]);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      closing.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Writes the result: `LPUSH {key} <blob>` and `EXPIRE {key} <result_ttl>` in one pipeline.
   * Results sent in the same tick go as one call of a script (`RPC_RESULTS_SCRIPT`) that runs
   * the same two commands per result.
   */
  async send(returnPath: string, result: ResultMessage): Promise<void> {
    this.assertOpen();
    const prefix = `${RETURN_PATH_SCHEME}://`;
    if (!returnPath.startsWith(prefix) || returnPath.length === prefix.length) {
      throw new LightbusError(ErrorCodes.RETURN_PATH_UNSUPPORTED, `The redis result transport cannot write to "${returnPath}": it only writes ${prefix} return paths.`);
    }
    const key = returnPath.slice(prefix.length);
    const blob = encodeResult(result);
    const ttl = String(Math.max(1, Math.ceil(this.settings.resultTtlS)));
    const plain: Command[] = [
      ['LPUSH', key, blob],
      ['EXPIRE', key, ttl],
    ];
    try {
      await this.#results.write([key], [blob, ttl], plain, 'sending an RPC result');
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
