/**
 * RPC calls over Redis lists, as Python Lightbus does: the caller sets `rpc_expiry_key:{id}`
 * (with the call's TTL) and pushes the call blob onto `{api}:rpc_queue`; a worker pops it and
 * runs it only if it could delete the expiry key (at-most-once, with a deadline).
 *
 * @module
 */
import { describeError, sleep, type RpcConsumeOptions, type RpcMessage, type RpcTransport, type TransportContext } from '@lightbus/core';
import { RedisScript, checkReplies, isRefusal, isReplyError, wrapError, type Command, type CommandClient, type PipelineReply } from './client.js';
import { ABORTED, RedisTransportBase, abortable, backoffMs } from './base.js';
import { TickBatcher } from './batch.js';
import type { RedisTransportOptions } from './options.js';
import { CLAIM_EXPIRED, CLAIM_UNREAD, RPC_CALLS_SCRIPT, RPC_POP_CLAIM_SCRIPT, decodeCall, encodeCall, rpcExpiryKey, rpcQueueKey } from './wire.js';

const RPC_CALLS = new RedisScript(RPC_CALLS_SCRIPT);
const RPC_POP_CLAIM = new RedisScript(RPC_POP_CLAIM_SCRIPT);
/** `BLMOVE` wake-ups that find the calls taken by someone else before a worker stops using `BLMOVE`. */
const MAX_EMPTY_WAKES = 3;

interface Popped {
  queue: string;
  blob: string;
}

/** The Redis RPC transport. Build it with {@link createRedisRpcTransport}. */
export class RedisRpcTransport extends RedisTransportBase implements RpcTransport {
  /** Declared capabilities: the expiry key carries the call's deadline. */
  readonly capabilities = { deadlines: true };
  #queueCount = 1;
  /** Calls sent in the same tick go as one script call. */
  readonly #calls: TickBatcher;
  /** False on a cluster, and once Redis refused the pop-and-claim script: `LPOP`, `PTTL` + `DEL` then. */
  #popScript: boolean;
  /**
   * False once Redis refused `BLMOVE`, or once other consumers were seen on the queue: one queue
   * is then read as several are (`BLPOP`).
   */
  #moveWait = true;
  /** `BLMOVE` wake-ups that found the calls already taken by another consumer. */
  #emptyWakes = 0;

  /**
   * @param options see {@link RedisTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: RedisTransportOptions, context: TransportContext) {
    super(options, context, 'rpc');
    this.#calls = new TickBatcher({ redis: this.redis, script: RPC_CALLS, logger: context.logger, label: 'RPC calls' });
    this.#popScript = !this.redis.cluster;
  }

  /**
   * Sends one call: `SET rpc_expiry_key:{id} 1 EX <ttl>` then `RPUSH {api}:rpc_queue <blob>`, in
   * one pipeline (setting the key first closes the race where a worker pops the call before its
   * key exists). The TTL is the call's timeout in whole seconds, rounded up. Calls sent in the
   * same tick go as one call of a script (`RPC_CALLS_SCRIPT`) that runs the same two commands
   * per call.
   */
  async call(message: RpcMessage, options: { timeoutMs: number }): Promise<void> {
    this.assertOpen();
    const timeoutMs = options.timeoutMs > 0 ? options.timeoutMs : this.settings.rpcTimeoutS * 1000;
    const ttl = Math.max(1, Math.ceil(timeoutMs / 1000));
    const what = `sending RPC ${message.apiName}.${message.procedureName}()`;
    const expiryKey = rpcExpiryKey(message.id);
    const queueKey = rpcQueueKey(message.apiName);
    const blob = encodeCall(message);
    const set: Command = ['SET', expiryKey, '1', 'EX', ttl];
    const push: Command = ['RPUSH', queueKey, blob];
    try {
      if (this.redis.cluster) {
        // Two keys in two slots: keep the order by waiting for the key before pushing the call.
        await this.redis.send(set);
        await this.redis.send(push);
      } else await this.#calls.write([expiryKey, queueKey], [String(ttl), blob], [set, push], what);
    } catch (error) {
      throw wrapError(error, what);
    }
  }

  /**
   * Yields calls to the given APIs until the signal aborts, on one blocking connection per loop.
   * One queue: `BLMOVE {queue} {queue} LEFT LEFT <timeout>` (blocks until a call is there, and
   * leaves it in place) with a script call (`RPC_POP_CLAIM_SCRIPT`) pipelined behind it, which
   * takes and claims up to `rpc_batch_size` calls: a burst costs one round trip. Several queues:
   * `BLPOP {api1}:rpc_queue {api2}:rpc_queue ... <timeout>`, then one script call that claims
   * that call and takes and claims up to `rpc_batch_size - 1` more; while calls keep coming, the
   * next burst is taken by the script alone. A claim is `PTTL` + `DEL rpc_expiry_key:{id}`: a
   * call whose key was already gone has expired and is dropped silently; the key's remaining TTL
   * becomes its deadline. On a cluster (one `BLPOP` per queue in turn), or where Redis refuses
   * scripts, the same commands go as pipelines (`PTTL` + `DEL`, with an `LPOP {queue} <n>` that
   * drains a burst). Calls taken and not yet yielded when the loop stops go back to the head of
   * their queue, with their expiry keys.
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
    /** The last read found calls waiting: take the next ones without blocking first. */
    let hot = false;
    // On abort, end the blocking BLPOP at once with CLIENT UNBLOCK (it then returns nothing, so
    // no call is lost, unlike dropping the connection). On a cluster, the BLPOP times out instead.
    // If Redis is unreachable, neither UNBLOCK nor the BLPOP timeout arrive: stop waiting later.
    const giveUp = new AbortController();
    const onAbort = () => {
      if (connId !== undefined) void this.redis.send(['CLIENT', 'UNBLOCK', connId]).catch(() => undefined);
      setTimeout(() => giveUp.abort(), this.settings.blockMs + 500).unref();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const blocking = async (): Promise<CommandClient> => {
      if (!conn) {
        conn = await this.acquireBlocking(signal);
        connId = this.redis.cluster ? undefined : String(await conn.send(['CLIENT', 'ID']));
      }
      return conn;
    };
    try {
      while (!signal.aborted) {
        try {
          let claimed: RpcMessage[];
          if (queues.length === 1 && this.#popScript && this.#moveWait) {
            // One queue: wait and take a burst in one round trip (BLMOVE + the script).
            const taken = await abortable(this.#waitAndTake(await blocking(), queues[0]!), giveUp.signal);
            if (taken === ABORTED) break;
            attempt = 0;
            if (signal.aborted) {
              pending = taken; // restored below: the call goes back with its expiry key
              break;
            }
            claimed = taken;
          } else if (hot && this.#popScript) {
            // Calls were waiting a moment ago: take and claim the next ones in one round trip.
            const taken = await abortable(this.#popAndClaim(rotate(queues, turn++), undefined), giveUp.signal);
            if (taken === ABORTED) break;
            attempt = 0;
            hot = taken.popped > 0;
            claimed = taken.messages;
          } else {
            const keys = this.redis.cluster ? [queues[turn++ % queues.length]!] : queues;
            const popped = await abortable(this.#pop(await blocking(), keys), giveUp.signal);
            if (popped === ABORTED) break;
            attempt = 0;
            if (popped.length === 0) continue;
            if (signal.aborted) {
              await this.#giveBack(popped);
              break;
            }
            const first = popped[0]!;
            if (this.#popScript) {
              const taken = await abortable(this.#popAndClaim([first.queue], first), giveUp.signal);
              if (taken === ABORTED) break;
              hot = taken.popped > 0;
              claimed = taken.messages;
            } else {
              const taken = await abortable(this.#claim(popped, first.queue), giveUp.signal);
              if (taken === ABORTED) break;
              claimed = taken;
            }
          }
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
    const decoded: RpcMessage[] = [];
    for (const p of popped) {
      try {
        decoded.push(decodeCall(p.blob));
      } catch (error) {
        this.#dropMalformed(p, error);
      }
    }
    const draining = drain !== undefined && this.settings.rpcBatchSize > 1;
    const commands: Command[] = draining ? [['LPOP', drain, this.settings.rpcBatchSize - 1]] : [];
    for (const message of decoded) {
      const key = rpcExpiryKey(message.id);
      commands.push(['PTTL', key], ['DEL', key]);
    }
    if (commands.length === 0) return [];
    const replies = checkReplies(await this.redis.pipeline(commands), 'claiming RPC calls');
    const more = draining ? ((replies.shift() as string[] | null) ?? []) : [];
    const now = Date.now();
    const out: RpcMessage[] = [];
    decoded.forEach((message, i) => this.#keep(out, message, Number(replies[i * 2 + 1]) === 1 ? Number(replies[i * 2]) : CLAIM_EXPIRED, now));
    if (more.length > 0) out.push(...(await this.#claim(more.map((blob) => ({ queue: drain!, blob })))));
    return out;
  }

  /**
   * One {@link RPC_POP_CLAIM_SCRIPT} call: claims `first` (a call `BLPOP` gave us) and takes and
   * claims up to `rpc_batch_size` calls in all from `queues`. Returns the calls that may run, in
   * order, and how many the script popped. When Redis refuses the script, turns it off (the loop
   * then reads with `BLPOP`, `LPOP`, `PTTL` and `DEL`) and claims `first` that way.
   */
  async #popAndClaim(queues: readonly string[], first: Popped | undefined): Promise<{ messages: RpcMessage[]; popped: number }> {
    let firstCall: RpcMessage | undefined;
    if (first) {
      try {
        firstCall = decodeCall(first.blob);
      } catch (error) {
        this.#dropMalformed(first, error);
      }
    }
    const keys = firstCall ? [...queues, rpcExpiryKey(firstCall.id)] : [...queues];
    const want = this.settings.rpcBatchSize - (first ? 1 : 0);
    const reply = await this.#runPopClaim(keys, [String(queues.length), String(want)]);
    if (reply === undefined) return { messages: first ? await this.#claim([first], first.queue) : [], popped: 0 };
    return this.#claimed(reply, queues, firstCall);
  }

  /**
   * Waits for calls on one queue and takes them in one round trip: `BLMOVE {queue} {queue} LEFT
   * LEFT <timeout>` (which blocks until the queue holds a call, and leaves it where it was), with
   * an {@link RPC_POP_CLAIM_SCRIPT} call pipelined behind it, which Redis runs as soon as the
   * `BLMOVE` answers: it takes and claims up to `rpc_batch_size` calls. Returns the calls that
   * may run, in order. When Redis refuses `BLMOVE` or the script, turns that off (logged once)
   * and returns what the script took: the loop then reads as it does for several queues. It does
   * the same once it has woken {@link MAX_EMPTY_WAKES} times to find the calls taken: other
   * consumers read the queue, and `BLMOVE` (which leaves a call in place) wakes them all.
   */
  async #waitAndTake(conn: CommandClient, queue: string): Promise<RpcMessage[]> {
    const seconds = (this.settings.blockMs / 1000).toFixed(3);
    const args = ['1', String(this.settings.rpcBatchSize)];
    const [moved, taken] = (await conn.pipeline([['BLMOVE', queue, queue, 'LEFT', 'LEFT', seconds], RPC_POP_CLAIM.command([queue], args)])) as [PipelineReply, PipelineReply];
    // The script ran whatever the BLMOVE answered: what it took is ours to run (or to restore).
    let reply: unknown;
    if (taken.ok) reply = taken.value;
    else if (isReplyError(taken.error, 'NOSCRIPT')) reply = await this.#runPopClaim([queue], args);
    else if (isRefusal(taken.error)) reply = this.#refusePopScript(taken.error);
    else throw taken.error;
    const { messages, popped } = reply === undefined ? { messages: [], popped: 0 } : await this.#claimed(reply, [queue], undefined);
    if (!moved.ok) {
      if (isRefusal(moved.error)) {
        if (this.#moveWait) this.context.logger.info(`Redis refused BLMOVE (${describeError(moved.error)}); waiting for RPC calls with BLPOP from now on.`);
        this.#moveWait = false;
      } else if (messages.length === 0) throw moved.error;
    } else if (this.#moveWait && moved.value !== null && popped === 0 && reply !== undefined && ++this.#emptyWakes >= MAX_EMPTY_WAKES) {
      // A call was there, and someone else took it: other consumers (another worker, a Python
      // one) read this queue. BLMOVE leaves a call in place, so every waiting consumer wakes for
      // it; BLPOP wakes one. From now on, wait as for several queues.
      this.context.logger.debug(`Other consumers read ${queue}: waiting for RPC calls with BLPOP from now on.`);
      this.#moveWait = false;
    }
    return messages;
  }

  /** Runs {@link RPC_POP_CLAIM_SCRIPT}; undefined when Redis refused it (now turned off). */
  async #runPopClaim(keys: string[], args: string[]): Promise<unknown> {
    try {
      return await RPC_POP_CLAIM.run(this.redis, keys, args);
    } catch (error) {
      if (!isRefusal(error)) throw error;
      return this.#refusePopScript(error);
    }
  }

  #refusePopScript(error: unknown): undefined {
    if (this.#popScript) this.context.logger.info(`Redis refused a script (${describeError(error)}); reading RPC calls with LPOP, PTTL and DEL from now on.`);
    this.#popScript = false;
    return undefined;
  }

  /**
   * The calls of a {@link RPC_POP_CLAIM_SCRIPT} reply that may run, in order (expired ones are
   * dropped, malformed ones reported and dropped), and how many it popped. A call whose id the
   * script could not read is claimed with `PTTL` + `DEL`.
   */
  async #claimed(reply: unknown, queues: readonly string[], firstCall: RpcMessage | undefined): Promise<{ messages: RpcMessage[]; popped: number }> {
    if (!Array.isArray(reply) || (reply.length - (firstCall ? 1 : 0)) % 3 !== 0) {
      throw new Error(`Redis answered the RPC pop script with ${describeError(reply).slice(0, 80)} instead of claims and calls`);
    }
    const messages: RpcMessage[] = [];
    const now = Date.now();
    let at = 0;
    if (firstCall) this.#keep(messages, firstCall, Number(reply[at++]), now);
    let unread: Popped[] | undefined;
    for (; at < reply.length; at += 3) {
      const popped: Popped = { queue: queues[Number(reply[at]) - 1] ?? queues[0]!, blob: String(reply[at + 1]) };
      const claim = Number(reply[at + 2]);
      if (claim === CLAIM_UNREAD) {
        (unread ??= []).push(popped); // claimed below, after decoding; malformed ones are reported there
        continue;
      }
      let message: RpcMessage;
      try {
        message = decodeCall(popped.blob);
      } catch (error) {
        this.#dropMalformed(popped, error);
        continue;
      }
      this.#keep(messages, message, claim, now);
    }
    if (unread) messages.push(...(await this.#claim(unread)));
    return { messages, popped: (reply.length - (firstCall ? 1 : 0)) / 3 };
  }

  /**
   * Adds a claimed call to `out`, its deadline from the claim (the PTTL of its expiry key, in
   * ms, or -1 for none); a call whose key was gone ({@link CLAIM_EXPIRED}) expired: dropped.
   */
  #keep(out: RpcMessage[], message: RpcMessage, claim: number, now: number): void {
    if (claim === CLAIM_EXPIRED) {
      this.context.logger.debug(`RPC ${message.apiName}.${message.procedureName}() expired before it was read; dropped`, { id: message.id });
      return;
    }
    if (claim > 0) message.deadline = now + claim; // decoded here: ours to complete
    out.push(message);
  }

  #dropMalformed(popped: Popped, error: unknown): void {
    // The blob is not logged: its arguments may hold secrets.
    this.context.logger.warn(`Dropped a malformed RPC call from ${popped.queue}: ${(error as Error).message}.`, { bytes: popped.blob.length });
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

/** `items` starting at `turn` (modulo its length): each queue gets its turn to be read first. */
function rotate<T>(items: readonly T[], turn: number): readonly T[] {
  if (items.length < 2) return items;
  const at = turn % items.length;
  return [...items.slice(at), ...items.slice(0, at)];
}

/** Builds the Redis RPC transport. */
export function createRedisRpcTransport(options: RedisTransportOptions, context: TransportContext): RedisRpcTransport {
  return new RedisRpcTransport(options, context);
}
