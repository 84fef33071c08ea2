/**
 * RPC calls over Redis lists, as Python Lightbus does: the caller sets `rpc_expiry_key:{id}`
 * (with the call's TTL) and pushes the call blob onto `{api}:rpc_queue`; a worker pops it and
 * runs it only if it could delete the expiry key (at-most-once, with a deadline).
 *
 * @module
 */
import { sleep, type RpcConsumeOptions, type RpcMessage, type RpcTransport, type TransportContext } from '@lightbus/core';
import { checkReplies, wrapError, type Command, type CommandClient } from './client.js';
import { ABORTED, RedisTransportBase, abortable, backoffMs } from './base.js';
import type { RedisTransportOptions } from './options.js';
import { decodeCall, encodeCall, rpcExpiryKey, rpcQueueKey } from './wire.js';

interface Popped {
  queue: string;
  blob: string;
}

/** The Redis RPC transport. Build it with {@link createRedisRpcTransport}. */
export class RedisRpcTransport extends RedisTransportBase implements RpcTransport {
  /** Declared capabilities: the expiry key carries the call's deadline. */
  readonly capabilities = { deadlines: true };
  #queueCount = 1;

  /**
   * @param options see {@link RedisTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: RedisTransportOptions, context: TransportContext) {
    super(options, context, 'rpc');
  }

  /**
   * Sends one call: `SET rpc_expiry_key:{id} 1 EX <ttl>` then `RPUSH {api}:rpc_queue <blob>`, in
   * one pipeline (setting the key first closes the race where a worker pops the call before its
   * key exists). The TTL is the call's timeout in whole seconds, rounded up.
   */
  async call(message: RpcMessage, options: { timeoutMs: number }): Promise<void> {
    this.assertOpen();
    const timeoutMs = options.timeoutMs > 0 ? options.timeoutMs : this.settings.rpcTimeoutS * 1000;
    const ttl = Math.max(1, Math.ceil(timeoutMs / 1000));
    const set: Command = ['SET', rpcExpiryKey(message.id), '1', 'EX', ttl];
    const push: Command = ['RPUSH', rpcQueueKey(message.apiName), encodeCall(message)];
    try {
      if (this.redis.cluster) {
        // Two keys in two slots: keep the order by waiting for the key before pushing the call.
        await this.redis.send(set);
        await this.redis.send(push);
      } else checkReplies(await this.redis.pipeline([set, push], { coalesce: true }), `sending RPC ${message.apiName}.${message.procedureName}()`);
    } catch (error) {
      throw wrapError(error, `sending RPC ${message.apiName}.${message.procedureName}()`);
    }
  }

  /**
   * Yields calls to the given APIs until the signal aborts. One blocking connection per loop:
   * `BLPOP {api1}:rpc_queue {api2}:rpc_queue ... <timeout>` (on a cluster, one BLPOP per queue
   * in turn), then one pipeline of `PTTL` + `DEL rpc_expiry_key:{id}` (with a non-blocking
   * `LPOP {queue} <n>` that drains a burst, claimed the same way): a call whose key was already
   * gone has expired and is dropped silently; the key's remaining TTL becomes its deadline.
   */
  async *consume(apiNames: readonly string[], options: RpcConsumeOptions): AsyncIterable<RpcMessage> {
    const signal = AbortSignal.any([options.signal, this.closing.signal]);
    if (signal.aborted || apiNames.length === 0) return;
    const queues = [...new Set(apiNames)].map(rpcQueueKey);
    this.#queueCount = Math.max(this.#queueCount, queues.length);
    let conn: CommandClient | undefined;
    let connId: string | undefined;
    let pending: RpcMessage[] = [];
    let attempt = 0;
    let turn = 0;
    // On abort, end the blocking BLPOP at once with CLIENT UNBLOCK (it then returns nothing, so
    // no call is lost, unlike dropping the connection). On a cluster, the BLPOP times out instead.
    // If Redis is unreachable, neither UNBLOCK nor the BLPOP timeout arrive: stop waiting later.
    const giveUp = new AbortController();
    const onAbort = () => {
      if (connId !== undefined) void this.redis.send(['CLIENT', 'UNBLOCK', connId]).catch(() => undefined);
      setTimeout(() => giveUp.abort(), this.settings.blockMs + 500).unref();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted) {
        try {
          if (!conn) {
            conn = await this.acquireBlocking(signal);
            connId = this.redis.cluster ? undefined : String(await conn.send(['CLIENT', 'ID']));
          }
          const keys = this.redis.cluster ? [queues[turn++ % queues.length]!] : queues;
          const popped = await abortable(this.#pop(conn, keys), giveUp.signal);
          if (popped === ABORTED) break;
          attempt = 0;
          if (popped.length === 0) continue;
          if (signal.aborted) {
            await this.#giveBack(popped);
            break;
          }
          const claimed = await abortable(this.#claim(popped, popped[0]!.queue), giveUp.signal);
          if (claimed === ABORTED) break;
          pending = claimed;
          while (pending.length > 0) {
            const next = pending.shift()!;
            yield next;
          }
        } catch (error) {
          if (signal.aborted) break;
          if (conn) this.releaseBlocking(conn, true);
          conn = undefined;
          const delay = backoffMs(attempt++);
          this.context.logger.warn(`Reading RPC calls for ${apiNames.join(', ')} failed: ${this.describe(error)}. Retrying in ${delay} ms.`);
          await sleep(delay, signal);
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (conn) this.releaseBlocking(conn, true);
      if (pending.length > 0) await this.#restore(pending);
    }
  }

  /** BLPOP one call, or time out. */
  async #pop(conn: CommandClient, keys: string[]): Promise<Popped[]> {
    // On a cluster each queue is read in turn (a BLPOP may not cross slots): wait less per queue.
    const ms = this.redis.cluster ? Math.max(50, this.settings.blockMs / this.#queueCount) : this.settings.blockMs;
    const seconds = (ms / 1000).toFixed(3);
    const reply = (await conn.send(['BLPOP', ...keys, seconds])) as [string, string] | null;
    return reply ? [{ queue: reply[0], blob: reply[1] }] : [];
  }

  /**
   * Deletes the expiry keys; returns the calls that may run, in order. With `drain`, the same
   * pipeline also takes up to `rpc_batch_size - 1` more calls from that queue (`LPOP {queue} n`),
   * which are claimed in a second pipeline: a lone call costs one round trip after its BLPOP.
   */
  async #claim(popped: Popped[], drain?: string): Promise<RpcMessage[]> {
    const decoded: Array<{ message: RpcMessage; popped: Popped }> = [];
    for (const p of popped) {
      try {
        decoded.push({ message: decodeCall(p.blob), popped: p });
      } catch (error) {
        // The blob is not logged: its arguments may hold secrets.
        this.context.logger.warn(`Dropped a malformed RPC call from ${p.queue}: ${(error as Error).message}.`, { bytes: p.blob.length });
      }
    }
    const draining = drain !== undefined && this.settings.rpcBatchSize > 1;
    const commands: Command[] = draining ? [['LPOP', drain, this.settings.rpcBatchSize - 1]] : [];
    for (const { message } of decoded) {
      const key = rpcExpiryKey(message.id);
      commands.push(['PTTL', key], ['DEL', key]);
    }
    if (commands.length === 0) return [];
    const replies = checkReplies(await this.redis.pipeline(commands), 'claiming RPC calls');
    const more = draining ? ((replies.shift() as string[] | null) ?? []) : [];
    const now = Date.now();
    const out: RpcMessage[] = [];
    decoded.forEach(({ message }, i) => {
      const pttl = Number(replies[i * 2]);
      const deleted = Number(replies[i * 2 + 1]);
      if (deleted !== 1) {
        this.context.logger.debug(`RPC ${message.apiName}.${message.procedureName}() expired before it was read; dropped`, { id: message.id });
        return;
      }
      if (pttl > 0) message.deadline = now + pttl; // decoded here: ours to complete
      out.push(message);
    });
    if (more.length > 0) out.push(...(await this.#claim(more.map((blob) => ({ queue: drain!, blob })))));
    return out;
  }

  /** Puts popped calls back at the head of their queues (their expiry keys are untouched). */
  async #giveBack(popped: Popped[]): Promise<void> {
    const commands: Command[] = [...popped].reverse().map((p) => ['LPUSH', p.queue, p.blob]);
    await this.redis.pipeline(commands).catch(() => undefined);
  }

  /** Calls claimed but not yielded when the loop stopped: restore the key, put the call back. */
  async #restore(calls: RpcMessage[]): Promise<void> {
    const now = Date.now();
    const commands: Command[] = [];
    for (const call of [...calls].reverse()) {
      const left = (call.deadline ?? now + 1000) - now;
      if (left <= 0) continue;
      commands.push(['SET', rpcExpiryKey(call.id), '1', 'PX', left], ['LPUSH', rpcQueueKey(call.apiName), encodeCall(call)]);
    }
    if (commands.length > 0) await this.redis.pipeline(commands).catch(() => undefined);
  }
}

/** Builds the Redis RPC transport. */
export function createRedisRpcTransport(options: RedisTransportOptions, context: TransportContext): RedisRpcTransport {
  return new RedisRpcTransport(options, context);
}
