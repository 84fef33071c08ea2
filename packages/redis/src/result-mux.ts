/**
 * Waiting for many RPC results on one blocking connection.
 *
 * Each call's result arrives in its own list (`{api}.{proc}:result:{id}`, the Python wire
 * format). Instead of one `BLPOP` per waiting call, each on its own connection, the multiplexer
 * keeps one blocking connection per transport and issues `BLPOP key1 key2 ... keyN <seconds>`
 * over every key being waited for, with a script that `LPOP`s each of them pipelined behind it:
 * Redis runs it as soon as the `BLPOP` answers, so the results of a burst arrive together, in
 * one round trip, and are handed out together. (Where scripts are refused, a pipeline of `LPOP`s
 * follows in a second round trip.) Then the loop blocks again.
 *
 * A key added while the `BLPOP` is blocked must not wait behind it: the transport's command
 * connection sends `CLIENT UNBLOCK <id>` (at most one per event-loop turn), the `BLPOP` returns
 * nothing, and is issued again with the new keys. Results stay in their lists until popped, so
 * nothing is lost between two `BLPOP`s; a popped result nobody waits for any more goes back to
 * its list, with its TTL, as if it had never been read.
 *
 * Not used on a Redis Cluster (a multi-key `BLPOP` must stay in one slot), and given up on when
 * Redis refuses `CLIENT ID` or `CLIENT UNBLOCK` (an ACL, a managed Redis): the result transport
 * then waits for each call on its own connection, as before.
 *
 * @module
 */
import { sleep, type Logger } from '@lightbus/core';
import { RedisScript, isRefusal, isReplyError, type Command, type CommandClient, type PipelineReply } from './client.js';

/** Seconds one multiplexed `BLPOP` blocks before it is issued again. */
const BLOCK_SECONDS = 5;
/** How long past its timeout a `BLPOP` may go unanswered before the connection counts as dead. */
const HANG_GRACE_MS = 1000;
/** How long opening the blocking connection (connect, `CLIENT ID`) may take. */
const CONNECT_TIMEOUT_MS = 5000;
/** `CLIENT UNBLOCK` attempts that found nothing blocked before the connection counts as replaced. */
const MAX_UNBLOCK_MISSES = 12;

/**
 * The sweep: `LPOP` every key, answer `index, value` (1-based) for each key that had a result,
 * `-index, ""` for a key that is not a list.
 */
const SWEEP_SCRIPT = `local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.pcall('LPOP', key)
  if type(v) == 'table' and v.err then
    out[#out + 1] = -i
    out[#out + 1] = ''
  elseif v then
    out[#out + 1] = i
    out[#out + 1] = v
  end
end
return out`;
const SWEEP = new RedisScript(SWEEP_SCRIPT);

/** The longest delay setTimeout accepts. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** How a wait on the multiplexer ended. */
export type MuxOutcome =
  | { kind: 'result'; blob: string }
  | { kind: 'malformed'; reason: string }
  | { kind: 'timeout' | 'aborted' | 'cancelled' | 'closed' | 'fallback' };

const TIMEOUT: MuxOutcome = { kind: 'timeout' };
const ABORTED: MuxOutcome = { kind: 'aborted' };
const CANCELLED: MuxOutcome = { kind: 'cancelled' };
const CLOSED: MuxOutcome = { kind: 'closed' };
const FALLBACK: MuxOutcome = { kind: 'fallback' };

/** One result key being watched, from `prepare()` until `cancel()`. */
export class Watch {
  /** The result list. */
  readonly key: string;
  /** A result popped while nobody was waiting; taken by the next wait. */
  blob: string | undefined;
  /** The wait in progress, if any. */
  settle: ((outcome: MuxOutcome) => void) | undefined;
  /** When the watch started or its last wait ended (watches nobody waits on expire). */
  idleSince: number;
  /** False once unwatched. */
  active = true;
  #timer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;

  constructor(key: string) {
    this.key = key;
    this.idleSince = Date.now();
  }

  /** Starts a wait; `end` is called once with its outcome. */
  begin(timeoutMs: number, signal: AbortSignal | undefined, end: (outcome: MuxOutcome) => void): void {
    this.settle = end;
    this.#arm(Date.now() + timeoutMs);
    if (signal) {
      this.#signal = signal;
      this.#onAbort = () => this.finish(ABORTED);
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  /** Times the wait out at `deadline` (in steps: a timer cannot wait longer than ~24.8 days). */
  #arm(deadline: number): void {
    const left = deadline - Date.now();
    if (left > MAX_TIMER_MS) this.#timer = setTimeout(() => this.#arm(deadline), MAX_TIMER_MS);
    else this.#timer = setTimeout(() => this.finish(TIMEOUT), Math.max(0, left));
  }

  /** Ends the wait in progress (if any) with `outcome`; true when there was one. */
  finish(outcome: MuxOutcome): boolean {
    const settle = this.settle;
    if (!settle) return false;
    this.settle = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#onAbort) this.#signal!.removeEventListener('abort', this.#onAbort);
    this.#signal = undefined;
    this.#onAbort = undefined;
    this.idleSince = Date.now();
    settle(outcome);
    return true;
  }
}

/** What the multiplexer needs from its transport. */
export interface MuxHost {
  /** The shared command connection (for `CLIENT UNBLOCK` and putting results back). */
  readonly redis: CommandClient;
  /** Aborts when the transport closes. */
  readonly closing: AbortSignal;
  readonly logger: Logger;
  /** TTL, in seconds, of a result list (restored when a popped result is put back). */
  readonly resultTtlS: number;
  /** Opens a dedicated blocking connection that does not reconnect by itself. */
  acquire(signal: AbortSignal): Promise<CommandClient>;
  /** Closes a blocking connection at once. */
  release(conn: CommandClient): void;
  /** Describes an error for a log line, without secrets. */
  describe(error: unknown): string;
}

/** Many result waits over one blocking connection. See the module comment. */
export class ResultMultiplexer {
  readonly #host: MuxHost;
  readonly #watches = new Map<string, Watch>();
  /** False once Redis refused `CLIENT ID` / `CLIENT UNBLOCK`: waits go their own way. */
  #usable = true;
  #running = false;
  #conn: CommandClient | undefined;
  #connId: string | undefined;
  /** The `BLPOP` in flight: a generation number, 0 when none. */
  #blocking = 0;
  #generation = 0;
  /** A key was added that the `BLPOP` in flight does not watch. */
  #missing = false;
  #unblockScheduled = false;
  #unblockMisses = 0;
  #wake: (() => void) | undefined;
  /** False once Redis refused the sweep script (the sweep then pipelines LPOPs). */
  #scripts = true;

  constructor(host: MuxHost) {
    this.#host = host;
    host.closing.addEventListener('abort', () => this.#close(), { once: true });
  }

  /** False when Redis refused what the multiplexer needs; waits then go their own way. */
  get usable(): boolean {
    return this.#usable;
  }

  /**
   * Starts watching `key`. Returns undefined when the key is already watched (the same id
   * prepared twice): that caller then waits on its own.
   */
  watch(key: string): Watch | undefined {
    if (!this.#usable || this.#watches.has(key)) return undefined;
    const watch = new Watch(key);
    this.#watches.set(key, watch);
    if (this.#blocking !== 0) {
      this.#missing = true;
      this.#scheduleUnblock();
    }
    if (!this.#running) {
      this.#running = true;
      void this.#run();
    } else if (this.#wake) {
      const wake = this.#wake;
      this.#wake = undefined;
      wake();
    }
    return watch;
  }

  /** Stops watching; a result popped meanwhile and not taken goes back to its list. */
  unwatch(watch: Watch): void {
    if (!watch.active) return;
    watch.active = false;
    if (this.#watches.get(watch.key) === watch) this.#watches.delete(watch.key);
    watch.finish(CANCELLED);
    if (watch.blob !== undefined) {
      const blob = watch.blob;
      watch.blob = undefined;
      this.#putBack(watch.key, blob);
    }
  }

  /**
   * Waits for the result of `watch`, at most `timeoutMs`. Resolves (never rejects) with the
   * outcome; `fallback` means: wait on your own connection instead.
   */
  wait(watch: Watch, timeoutMs: number, signal?: AbortSignal): Promise<MuxOutcome> {
    if (watch.blob !== undefined) {
      const blob = watch.blob;
      watch.blob = undefined;
      watch.idleSince = Date.now();
      return Promise.resolve({ kind: 'result', blob });
    }
    if (!watch.active) return Promise.resolve(CANCELLED);
    if (this.#host.closing.aborted) return Promise.resolve(CLOSED);
    // A second wait at the same time on one pending result: it waits on its own.
    if (!this.#usable || watch.settle) return Promise.resolve(FALLBACK);
    if (signal?.aborted) return Promise.resolve(ABORTED);
    return new Promise((resolve) => watch.begin(timeoutMs, signal, resolve));
  }

  // ---------------------------------------------------------------------------------------------

  async #run(): Promise<void> {
    let failures = 0;
    while (this.#usable && !this.#host.closing.aborted) {
      // Callers woken by the last results usually start their next call now: let them register
      // their keys first, so the next BLPOP watches them without a CLIENT UNBLOCK.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (!this.#usable || this.#host.closing.aborted) break;
      if (this.#keys().length === 0) {
        // Nothing to wait for (results already popped are held by their watches): until watch().
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      try {
        const conn = this.#conn ?? (await this.#connect());
        const keys = this.#keys(); // again: more may have come while connecting
        if (keys.length === 0) continue;
        this.#missing = false;
        this.#unblockMisses = 0;
        this.#blocking = ++this.#generation;
        // With scripts, the sweep of every watched key is queued right behind the BLPOP: Redis
        // runs it the moment the BLPOP answers, so a burst of results comes back in one round
        // trip (the key the BLPOP popped is simply empty for the sweep).
        const sweep = this.#scripts ? SWEEP.command(keys, []) : undefined;
        let replies: PipelineReply[] | typeof HUNG;
        try {
          const blpop: Command = ['BLPOP', ...keys, BLOCK_SECONDS];
          replies = await withTimeout(sweep ? conn.pipeline([blpop, sweep]) : conn.pipeline([blpop]), BLOCK_SECONDS * 1000 + HANG_GRACE_MS);
        } finally {
          this.#blocking = 0;
        }
        if (replies === HUNG) throw new Error(`no answer to BLPOP within ${BLOCK_SECONDS * 1000 + HANG_GRACE_MS} ms`);
        const [popped, swept] = replies as [PipelineReply, PipelineReply | undefined];
        const reply = popped.ok ? (popped.value as [string, string] | null) : null;
        // The rest of the burst: what the pipelined sweep found (it ran whatever the BLPOP
        // answered, and finds a key that is not a list), or, without scripts, a sweep now (a
        // second round trip). All handed out at once, so that their callers' next calls leave
        // together too (one write, one batch for the worker), not one of them alone.
        let found: Array<[string, string]> = [];
        let sweepError: Error | undefined;
        try {
          if (swept) found = await this.#sweepReply(conn, keys, swept);
          else if (reply) found = await this.#sweep(conn, reply[0]);
        } catch (error) {
          sweepError = error instanceof Error ? error : new Error(String(error));
        }
        if (reply) this.#deliver(reply[0], reply[1]);
        for (const [key, blob] of found) this.#deliver(key, blob);
        if (sweepError !== undefined) throw sweepError;
        if (!popped.ok && !(swept && isReplyError(popped.error, 'WRONGTYPE'))) throw popped.error;
        failures = 0;
      } catch (error) {
        if (this.#host.closing.aborted || !this.#usable) break;
        if (isReplyError(error, 'WRONGTYPE') && this.#conn) {
          // One of the keys is not a list: the sweep, which answers per key, finds it.
          const swept = await this.#sweep(this.#conn, undefined).then(
            (found) => {
              for (const [key, blob] of found) this.#deliver(key, blob);
              return true;
            },
            () => false,
          );
          if (swept) continue;
        }
        this.#drop();
        this.#host.logger.debug(`Waiting for RPC results: ${this.#host.describe(error)}; reconnecting.`);
        // Redis may be restarting: each waiting caller keeps its own deadline meanwhile.
        await sleep(Math.min(250, 25 * 2 ** Math.min(failures++, 4)), this.#host.closing);
      }
    }
    this.#running = false;
    this.#drop();
    if (!this.#usable) {
      for (const watch of this.#watches.values()) {
        watch.finish(FALLBACK);
        // Callers now wait on their own connections, with a BLPOP of their key: put back what
        // was popped for them.
        if (watch.blob !== undefined) {
          this.#putBack(watch.key, watch.blob);
          watch.blob = undefined;
        }
      }
    }
  }

  /** The keys to watch now; watches nobody has waited on for a result TTL are dropped. */
  #keys(): string[] {
    const keys: string[] = [];
    const stale = Date.now() - Math.max(60, this.#host.resultTtlS) * 1000;
    for (const watch of this.#watches.values()) {
      if (watch.blob !== undefined) continue; // already popped
      if (!watch.settle && watch.idleSince < stale) {
        // prepared (or last waited on) long ago and never cancelled: stop watching it
        this.unwatch(watch);
        continue;
      }
      keys.push(watch.key);
    }
    return keys;
  }

  /**
   * Pops every other watched key once, in one round trip, and returns the `[key, result]`s found:
   * a burst of results is collected together. One `EVALSHA` of {@link SWEEP_SCRIPT} (which answers
   * only the keys that had a result), or a pipeline of `LPOP`s where scripts are refused. Keys
   * that are not lists are reported to their callers.
   */
  async #sweep(conn: CommandClient, skip: string | undefined): Promise<Array<[string, string]>> {
    const keys: string[] = [];
    for (const watch of this.#watches.values()) if (watch.key !== skip && watch.blob === undefined) keys.push(watch.key);
    if (keys.length === 0) return [];
    if (this.#scripts) {
      try {
        return this.#found(keys, await SWEEP.run(conn, keys));
      } catch (error) {
        if (!isRefusal(error)) throw error;
        this.#scripts = false; // an ACL without EVAL: LPOP each key instead
      }
    }
    const found: Array<[string, string]> = [];
    const replies = await conn.pipeline(keys.map((k) => ['LPOP', k] as const));
    replies.forEach((r, i) => {
      if (r.ok) {
        if (typeof r.value === 'string') found.push([keys[i]!, r.value]);
      } else if (isReplyError(r.error, 'WRONGTYPE')) this.#wrongType(keys[i]!);
    });
    return found;
  }

  /**
   * The results of a sweep that was pipelined behind the `BLPOP`. When Redis lacked the script
   * (`NOSCRIPT`), sweeps again with it loaded; when it refused it, sweeps with `LPOP`s from now on.
   */
  async #sweepReply(conn: CommandClient, keys: string[], reply: PipelineReply): Promise<Array<[string, string]>> {
    if (reply.ok) return this.#found(keys, reply.value);
    if (isReplyError(reply.error, 'NOSCRIPT') || isRefusal(reply.error)) {
      if (!isReplyError(reply.error, 'NOSCRIPT')) this.#scripts = false;
      return this.#sweep(conn, undefined);
    }
    throw reply.error;
  }

  /** The `[key, result]`s a sweep found; keys that are not lists are reported to their callers. */
  #found(keys: string[], value: unknown): Array<[string, string]> {
    const found = value as Array<number | string>;
    const out: Array<[string, string]> = [];
    for (let i = 0; i + 1 < found.length; i += 2) {
      const index = Number(found[i]);
      if (index > 0) out.push([keys[index - 1]!, String(found[i + 1])]);
      else this.#wrongType(keys[-index - 1]!);
    }
    return out;
  }

  /** The key is not a list: its caller gets a malformed-result error, and it is not watched again. */
  #wrongType(key: string): void {
    const watch = this.#watches.get(key);
    if (!watch) return;
    this.#watches.delete(key);
    watch.active = false;
    watch.finish({ kind: 'malformed', reason: `the key ${key} holds another type than a list` });
  }

  #deliver(key: string, blob: string): void {
    if (!this.#usable) {
      this.#putBack(key, blob); // callers now wait on their own connections: leave it to them
      return;
    }
    const watch = this.#watches.get(key);
    if (watch?.settle) watch.finish({ kind: 'result', blob });
    else if (watch && watch.blob === undefined) watch.blob = blob;
    else this.#putBack(key, blob); // nobody waits for it (any more): leave it where it was
  }

  /** Puts a popped result back at the head of its list, with the result TTL. */
  #putBack(key: string, blob: string): void {
    if (this.#host.closing.aborted) return;
    void this.#host.redis
      .pipeline([
        ['LPUSH', key, blob],
        ['EXPIRE', key, Math.max(1, Math.ceil(this.#host.resultTtlS))],
      ])
      .catch(() => undefined);
  }

  async #connect(): Promise<CommandClient> {
    const timeout = AbortSignal.timeout(CONNECT_TIMEOUT_MS);
    const conn = await this.#host.acquire(timeout);
    this.#conn = conn;
    try {
      const id = await withTimeout(conn.send(['CLIENT', 'ID']), CONNECT_TIMEOUT_MS);
      if (id === HUNG) throw new Error('no answer to CLIENT ID');
      // CLIENT UNBLOCK of a client that is not blocked answers 0: this only checks it is allowed.
      const probe = await withTimeout(this.#host.redis.send(['CLIENT', 'UNBLOCK', String(id)]), CONNECT_TIMEOUT_MS);
      if (probe === HUNG) throw new Error('no answer to CLIENT UNBLOCK');
      this.#connId = String(id);
      return conn;
    } catch (error) {
      if (isRefusal(error)) this.#giveUp(error);
      throw error;
    }
  }

  /** Closes the blocking connection (a BLPOP in flight on it fails, and the loop reconnects). */
  #drop(): void {
    const conn = this.#conn;
    this.#conn = undefined;
    this.#connId = undefined;
    if (conn) this.#host.release(conn);
  }

  #scheduleUnblock(): void {
    if (this.#unblockScheduled) return;
    this.#unblockScheduled = true;
    // One CLIENT UNBLOCK for every key added in this turn of the event loop.
    setImmediate(() => {
      this.#unblockScheduled = false;
      void this.#unblock();
    });
  }

  async #unblock(): Promise<void> {
    const generation = this.#blocking;
    const id = this.#connId;
    if (generation === 0 || !this.#missing || id === undefined || this.#host.closing.aborted) return;
    let unblocked: unknown;
    try {
      unblocked = await this.#host.redis.send(['CLIENT', 'UNBLOCK', id]);
    } catch (error) {
      if (isRefusal(error)) this.#giveUp(error);
      // Otherwise Redis is unreachable: the BLPOP times out, or the loop reconnects.
      return;
    }
    if (Number(unblocked) === 1 || this.#blocking !== generation || this.#connId !== id) return;
    // Nothing was blocked: the BLPOP has not reached Redis yet, or has just answered. Try again
    // shortly; if it keeps missing, the connection is not the one we think: open a new one.
    if (++this.#unblockMisses > MAX_UNBLOCK_MISSES) {
      this.#host.logger.debug('Waiting for RPC results: CLIENT UNBLOCK keeps missing the blocking connection; reconnecting.');
      this.#drop();
      return;
    }
    const again = () => {
      if (this.#blocking === generation && this.#missing) this.#scheduleUnblock();
    };
    if (this.#unblockMisses <= 3) setImmediate(again);
    else setTimeout(again, Math.min(100, 2 ** this.#unblockMisses)).unref();
  }

  #giveUp(error: unknown): void {
    if (!this.#usable) return;
    this.#usable = false;
    this.#host.logger.info(
      `Redis refused CLIENT ID / CLIENT UNBLOCK (${this.#host.describe(error)}): each RPC caller now waits for its result on its own connection.`,
    );
    for (const watch of this.#watches.values()) watch.finish(FALLBACK);
    // A BLPOP in flight would go on popping results for callers that now wait on their own.
    this.#drop();
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #close(): void {
    for (const watch of this.#watches.values()) watch.finish(CLOSED);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

const HUNG: unique symbol = Symbol('hung');

/** `promise`, or {@link HUNG} when it has not settled after `ms`. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | typeof HUNG> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(HUNG), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

