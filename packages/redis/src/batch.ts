/**
 * Writes of one tick sent together. Many callers (RPC calls, RPC results) each write two commands
 * per message; when several messages are written in the same tick they go as one script call
 * that runs exactly those commands, in order, inside Redis. Redis then holds the same keys and
 * values as after the plain commands (Python services see no difference), and the client pays
 * for one command instead of two per message: less CPU on both sides under load.
 *
 * A lone message, every message on a Redis Cluster (its keys may live on several nodes), and every
 * message once Redis has refused scripts (ACL, proxy), goes as its plain commands in one pipeline.
 *
 * @module
 */
import { describeError, type Logger } from '@lightbus/core';
import { checkReplies, isRefusal, type Command, type CommandClient, type RedisScript } from './client.js';

/** One message's share of a batch. */
interface Queued {
  /** Its keys, in the script's stride. */
  readonly keys: readonly string[];
  /** Its arguments, in the script's stride. */
  readonly args: readonly string[];
  /** The plain commands that write it. */
  readonly plain: readonly Command[];
  readonly what: string;
  resolve(): void;
  reject(error: unknown): void;
}

/** Most messages in one script call (the script unpacks nothing, but keeps replies bounded). */
const MAX_SCRIPT_MESSAGES = 500;

/** What a {@link TickBatcher} needs. */
export interface TickBatcherOptions {
  /** The connection writes go on. */
  readonly redis: CommandClient;
  /**
   * The script: `KEYS` and `ARGV` hold each message's keys and arguments in turn; it answers one
   * reply per message (an error reply fails only that message).
   */
  readonly script: RedisScript;
  /** Logs the one-time switch to plain commands. */
  readonly logger: Logger;
  /** Names the writes in that log line, e.g. `RPC results`. */
  readonly label: string;
}

/** Sends the messages written in one tick as one script call (see the module comment). */
export class TickBatcher {
  readonly #options: TickBatcherOptions;
  #queue: Queued[] = [];
  /** False on a cluster (a message's keys may live on several nodes), and once Redis refused the script. */
  #scripts: boolean;

  /** @param options see {@link TickBatcherOptions} */
  constructor(options: TickBatcherOptions) {
    this.#options = options;
    this.#scripts = !options.redis.cluster;
  }

  /**
   * Writes one message. Resolves once Redis accepted it; rejects with Redis's error for this
   * message (other messages of the batch are not affected).
   *
   * @param keys the message's keys, as the script takes them
   * @param args the message's arguments, as the script takes them
   * @param plain the commands that write the message without the script
   * @param what names the write in errors, e.g. `sending RPC auth.login()`
   */
  write(keys: readonly string[], args: readonly string[], plain: readonly Command[], what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ keys, args, plain, what, resolve, reject });
      if (this.#queue.length === 1) process.nextTick(() => void this.#flush());
    });
  }

  async #flush(): Promise<void> {
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 1 || !this.#scripts) {
      await this.#plain(batch);
      return;
    }
    const calls: Array<Promise<void>> = [];
    for (let at = 0; at < batch.length; at += MAX_SCRIPT_MESSAGES) calls.push(this.#scripted(batch.slice(at, at + MAX_SCRIPT_MESSAGES)));
    await Promise.all(calls);
  }

  /** The plain commands of every message, in one pipeline; each message settles on its own replies. */
  async #plain(batch: readonly Queued[]): Promise<void> {
    const commands: Command[] = [];
    for (const m of batch) commands.push(...m.plain);
    let replies;
    try {
      replies = await this.#options.redis.pipeline(commands);
    } catch (error) {
      for (const m of batch) m.reject(error);
      return;
    }
    let at = 0;
    for (const m of batch) {
      const mine = replies.slice(at, (at += m.plain.length));
      try {
        checkReplies(mine, m.what);
      } catch (error) {
        m.reject(error);
        continue;
      }
      m.resolve();
    }
  }

  async #scripted(batch: readonly Queued[]): Promise<void> {
    const keys: string[] = [];
    const args: string[] = [];
    for (const m of batch) {
      for (const k of m.keys) keys.push(k);
      for (const a of m.args) args.push(a);
    }
    let replies: unknown;
    try {
      replies = await this.#options.script.run(this.#options.redis, keys, args);
    } catch (error) {
      if (isRefusal(error)) {
        if (this.#scripts) this.#options.logger.info(`Redis refused a script (${describeError(error)}); sending ${this.#options.label} as plain commands from now on.`);
        this.#scripts = false;
        await this.#plain(batch);
        return;
      }
      for (const m of batch) m.reject(error);
      return;
    }
    batch.forEach((m, i) => {
      const reply = Array.isArray(replies) ? (replies as unknown[])[i] : undefined;
      if (reply instanceof Error) m.reject(reply);
      else if (reply === undefined) m.reject(new Error(`Redis answered the ${this.#options.label} script with ${describeError(replies).slice(0, 80)} instead of one reply per message`));
      else m.resolve();
    });
  }
}
