/**
 * One small command interface over the two Redis clients we accept: ioredis (`Redis` or
 * `Cluster`) and node-redis v5 (`createClient()` from the `redis` package). Every transport talks
 * to Redis only through {@link CommandClient}, with raw command arrays, so the wire format is
 * written in one place and does not depend on a client library's command helpers.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { Redis, Cluster, Command as IoredisCommand, type RedisOptions } from 'ioredis';
import { ConfigurationError, ErrorCodes, LightbusError, TransportError, redactUrl, describeError, type Logger } from '@lightbus/core';

/** One command as sent on the wire: its name, then its arguments. */
export type Command = readonly [string, ...Array<string | number>];

/** What one command of a pipeline gave back: a reply, or the error Redis answered with. */
export type PipelineReply = { ok: true; value: unknown } | { ok: false; error: Error };

/** The commands the transports need, whichever client library carries them. */
export interface CommandClient {
  /** True when the client talks to a Redis Cluster (multi-key commands must stay in one slot). */
  readonly cluster: boolean;
  /** Sends one command and resolves with its reply; rejects with the client's error. */
  send(command: Command): Promise<unknown>;
  /**
   * As {@link send}, with the reply's bulk strings left as `Buffer`s where the client can (ioredis
   * on a single Redis); others give strings. For replies whose strings the caller converts itself (stream
   * entries, whose field names repeat from one entry to the next).
   */
  sendBinary?(command: Command): Promise<unknown>;
  /**
   * Puts the commands sent so far in this tick on the socket now. Commands sent in one tick
   * normally leave together at its end (one socket write); a command whose reply is wanted while
   * the rest of the tick runs (a read sent ahead before a batch is handled) is flushed at once.
   * Optional: a client that does not hold commands back need not have it.
   */
  flush?(): void;
  /**
   * Sends several commands in one round trip (a pipeline, never MULTI/EXEC) and resolves with
   * one reply per command, in order. On a cluster the commands may go to several nodes.
   */
  pipeline(commands: readonly Command[]): Promise<PipelineReply[]>;
  /** A new, not yet connected connection of the same kind, for blocking commands. Owned by the caller. */
  duplicate(options?: DuplicateOptions): CommandClient;
  /** Connects (no-op when already connected). */
  connect(): Promise<void>;
  /** Closes the connection gracefully when this client owns it. */
  close(): Promise<void>;
  /** Drops the connection at once (ends a blocking command). Only when owned. */
  destroy(): void;
}

/** The node-redis v5 client surface we use (kept structural so `redis` stays optional). */
export interface NodeRedisLike {
  sendCommand(args: ReadonlyArray<string>): Promise<unknown>;
  duplicate(): NodeRedisLike;
  connect(): Promise<unknown>;
  readonly isOpen: boolean;
  close?(): Promise<void>;
  quit?(): Promise<unknown>;
  destroy?(): void;
  disconnect?(): Promise<void>;
  on(event: 'error', listener: (error: unknown) => void): unknown;
}

/** A client a user may pass in the `client` option. */
export type AcceptedClient = Redis | Cluster | NodeRedisLike;

function isIoredis(client: unknown): client is Redis | Cluster {
  return client instanceof Redis || client instanceof Cluster || (typeof client === 'object' && client !== null && typeof (client as Redis).call === 'function' && typeof (client as Redis).pipeline === 'function');
}

function isNodeRedis(client: unknown): client is NodeRedisLike {
  return typeof client === 'object' && client !== null && typeof (client as NodeRedisLike).sendCommand === 'function' && typeof (client as NodeRedisLike).duplicate === 'function';
}

const errorListeners = new WeakSet<object>();

/** Options of {@link CommandClient.duplicate}. */
export interface DuplicateOptions {
  /**
   * When false, an ioredis connection does not reconnect by itself after it is lost: commands in
   * flight fail, and the owner opens a new connection (whose `CLIENT ID` it then knows). Default
   * true (the connection reconnects and resends the commands in flight). node-redis connections
   * always reconnect.
   */
  reconnect?: boolean;
}

/** The last error each client emitted: the real reason behind a later "Connection is closed". */
const lastErrors = new WeakMap<object, unknown>();

/**
 * A client error safe to keep as `cause`: ioredis attaches the failed command to its errors, and
 * for AUTH / HELLO that includes the password, so those are replaced by a plain copy.
 */
function safeCause(error: unknown): unknown {
  const command = (error as { command?: { name?: unknown } } | null)?.command;
  if (command && typeof command.name === 'string' && /^(auth|hello)$/i.test(command.name)) {
    const copy = new Error(redactUrl((error as Error).message));
    copy.name = (error as Error).name;
    return copy;
  }
  return error;
}

/** True for Redis's refusals of credentials or permissions (not worth retrying). */
function isAuthError(error: unknown): boolean {
  return /WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username-password/i.test(describeError(error));
}

function watchErrors(emitter: { on(event: 'error', listener: (error: unknown) => void): unknown }, logger: Logger, where: string): void {
  if (errorListeners.has(emitter)) return;
  errorListeners.add(emitter);
  let last = 0;
  emitter.on('error', (error: unknown) => {
    lastErrors.set(emitter, error);
    // The client reconnects by itself; log at most once every 5 s so a dead server does not flood.
    const now = Date.now();
    if (now - last < 5000) return;
    last = now;
    logger.warn(`Redis connection problem (${where}): ${redactUrl(describeError(error))}. Reconnecting.`);
  });
}

/**
 * An ioredis command built for our hot paths, where one command may carry a batch of events or
 * calls (thousands of arguments). It is what `redis.call()` builds (UTF-8 replies; we never set a
 * key prefix), less a cost of wide commands:
 * ioredis's constructor copies the arguments with `Array.prototype.flat()` (about 0.1 µs per
 * argument), and `call()` spreads them twice more: here they are copied once, as strings (all
 * ioredis would do to them).
 */
class WireCommand extends IoredisCommand {
  constructor(command: Command, replyEncoding: 'utf8' | null = 'utf8') {
    super(command[0], [], { replyEncoding });
    const args = new Array<string>(command.length - 1);
    for (let i = 1; i < command.length; i++) {
      const arg = command[i]!;
      args[i - 1] = typeof arg === 'string' ? arg : String(arg);
    }
    this.args = args;
  }
}

class IoredisCommandClient implements CommandClient {
  readonly cluster: boolean;
  readonly #client: Redis | Cluster;
  readonly #owned: boolean;
  readonly #logger: Logger;
  readonly #where: string;
  /** The cork of this tick (see #write), until the end of the tick or {@link flush}. */
  #cork: { stream: Redis['stream'] } | undefined;

  constructor(client: Redis | Cluster, owned: boolean, logger: Logger, where: string) {
    this.#client = client;
    this.#owned = owned;
    this.#logger = logger;
    this.#where = where;
    this.cluster = client instanceof Cluster || (client as { isCluster?: boolean }).isCluster === true;
    watchErrors(client, logger, where);
  }

  send(command: Command): Promise<unknown> {
    if (this.cluster) {
      const [name, ...args] = command;
      return this.#client.call(name, ...args);
    }
    return this.#write(command);
  }

  sendBinary(command: Command): Promise<unknown> {
    // A cluster routes through ioredis's own command methods: text replies there.
    if (this.cluster) return this.send(command);
    return this.#write(command, null);
  }

  async pipeline(commands: readonly Command[]): Promise<PipelineReply[]> {
    if (this.cluster) {
      // Keys of one pipeline may live on several nodes: send each on its own; ioredis still
      // batches commands issued in the same tick per node when auto-pipelining is on.
      const settled = await Promise.allSettled(commands.map((c) => this.send(c)));
      return settled.map((s) => (s.status === 'fulfilled' ? { ok: true, value: s.value } : { ok: false, error: toError(s.reason) }));
    }
    // Each command on its own (no ioredis Pipeline), in order, in the tick's one socket write;
    // every reply is caught at once (a connection lost mid-way rejects them all together).
    return Promise.all(
      commands.map((c) =>
        this.#write(c).then(
          (value): PipelineReply => ({ ok: true, value }),
          (error: unknown): PipelineReply => ({ ok: false, error: toError(error) }),
        ),
      ),
    );
  }

  /**
   * Writes one command, built without the per-argument passes of `call()`, through ioredis's
   * `sendCommand` (its reconnect, offline queue and reply handling) but not its auto-pipeline or
   * `Pipeline` objects: those cost a scavenge of several milliseconds every few hundred round
   * trips (measured: a serial SET/GET loop through either kept 3-6 MB alive per scavenge, 4.5-8
   * ms pauses, against 1 KB and 0.3 ms through `sendCommand`). Commands written in the same tick
   * still leave in one socket write: the socket is corked on the first and uncorked at the end
   * of the tick. Not on a cluster.
   */
  #write(command: Command, replyEncoding: 'utf8' | null = 'utf8'): Promise<unknown> {
    const client = this.#client as Redis;
    if (this.#cork === undefined && client.status === 'ready') {
      const stream = client.stream;
      if (stream.writable) {
        stream.cork();
        const cork = { stream };
        this.#cork = cork;
        process.nextTick(() => this.#uncork(cork));
      }
    }
    const built = new WireCommand(command, replyEncoding);
    client.sendCommand(built);
    return built.promise;
  }

  flush(): void {
    if (this.#cork) this.#uncork(this.#cork);
  }

  /** Releases `cork` if it is still the one in place (a flush may have released it already). */
  #uncork(cork: { stream: Redis['stream'] }): void {
    if (this.#cork !== cork) return;
    this.#cork = undefined;
    cork.stream.uncork();
  }

  duplicate(options: DuplicateOptions = {}): CommandClient {
    // Blocking commands must survive reconnects (no retry limit per request).
    const copy: Redis | Cluster =
      this.#client instanceof Cluster
        ? this.#client.duplicate()
        : this.#client.duplicate({
            maxRetriesPerRequest: null,
            lazyConnect: true,
            ...(options.reconnect === false ? { retryStrategy: () => null } : {}),
          });
    return new IoredisCommandClient(copy, true, this.#logger, `${this.#where}, blocking`);
  }

  async connect(): Promise<void> {
    const status = this.#client.status;
    if (status !== 'wait' && status !== 'end' && status !== 'close') return;
    try {
      await this.#client.connect();
    } catch (error) {
      // ioredis often rejects with "Connection is closed" while the reason (a refused password,
      // say) came as an 'error' event: report that reason.
      const reason = lastErrors.get(this.#client) ?? error;
      if (isAuthError(reason)) {
        throw new TransportError(
          `Redis refused the connection (${this.#where}): ${redactUrl(describeError(reason)).replace(/\.+$/, '')}. Check the username and password in the url (or the ACL rules); retrying will not help.`,
          { cause: safeCause(reason), retryable: false },
        );
      }
      throw wrapError(reason, `connecting (${this.#where})`);
    }
  }

  async close(): Promise<void> {
    if (!this.#owned) return;
    if (this.#client.status !== 'ready') {
      // Not connected (or reconnecting): a QUIT would wait for Redis to come back.
      this.#client.disconnect();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#client.quit(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, 1000);
        }),
      ]);
    } catch {
      // closing anyway
    } finally {
      clearTimeout(timer);
      this.#client.disconnect();
    }
  }

  destroy(): void {
    if (this.#owned) this.#client.disconnect();
  }
}

class NodeRedisCommandClient implements CommandClient {
  readonly cluster = false;
  readonly #client: NodeRedisLike;
  readonly #owned: boolean;
  readonly #logger: Logger;
  readonly #where: string;

  constructor(client: NodeRedisLike, owned: boolean, logger: Logger, where: string) {
    this.#client = client;
    this.#owned = owned;
    this.#logger = logger;
    this.#where = where;
    watchErrors(client, logger, where);
  }

  send(command: Command): Promise<unknown> {
    return this.#client.sendCommand(command.map(String));
  }

  async pipeline(commands: readonly Command[]): Promise<PipelineReply[]> {
    // node-redis writes every command issued in one tick in one go: this is a pipeline on the wire.
    const settled = await Promise.allSettled(commands.map((c) => this.send(c)));
    return settled.map((s) => (s.status === 'fulfilled' ? { ok: true, value: s.value } : { ok: false, error: toError(s.reason) }));
  }

  duplicate(): CommandClient {
    return new NodeRedisCommandClient(this.#client.duplicate(), true, this.#logger, `${this.#where}, blocking`);
  }

  async connect(): Promise<void> {
    if (!this.#client.isOpen) await this.#client.connect();
  }

  async close(): Promise<void> {
    if (!this.#owned || !this.#client.isOpen) return;
    try {
      if (this.#client.close) await this.#client.close();
      else if (this.#client.quit) await this.#client.quit();
    } catch {
      this.destroy();
    }
  }

  destroy(): void {
    if (!this.#owned) return;
    try {
      if (this.#client.destroy) this.#client.destroy();
      else void this.#client.disconnect?.().catch(() => undefined);
    } catch {
      // already closed
    }
  }
}

/** How to reach Redis: a URL (we own the connection) or a client the user passes in. */
export interface ConnectionOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://...`. */
  url?: string | undefined;
  /** An existing ioredis client (Redis or Cluster) or node-redis v5 client. Not closed by us. */
  client?: unknown;
  /** Treat `url` as the seed node of a Redis Cluster. */
  cluster?: boolean | undefined;
}

/** The default Redis URL, as in Python Lightbus. */
export const DEFAULT_URL = 'redis://127.0.0.1:6379';

/** Builds the command client for a transport. */
export function createCommandClient(options: ConnectionOptions, logger: Logger, role: string): CommandClient {
  const where = `${role} transport`;
  if (options.client !== undefined && options.client !== null) {
    const client = options.client as Record<string, unknown>;
    if (isIoredis(options.client)) {
      const prefix = (client['options'] as { keyPrefix?: string } | undefined)?.keyPrefix;
      const clusterPrefix = (client['options'] as { redisOptions?: { keyPrefix?: string } } | undefined)?.redisOptions?.keyPrefix;
      if (prefix || clusterPrefix) {
        throw new ConfigurationError(
          'The ioredis client passed to the redis transport has a keyPrefix. The Lightbus protocol has no key prefix (Python services would not see the keys): pass a client without keyPrefix, or use another Redis database.',
        );
      }
      return new IoredisCommandClient(options.client, false, logger, where);
    }
    if (isNodeRedis(options.client)) {
      if ('masters' in client || 'slots' in client) {
        throw new ConfigurationError('node-redis cluster clients are not supported by the redis transport. Pass an ioredis Cluster, or set { cluster: true, url } instead.');
      }
      if ((client['options'] as { RESP?: number } | undefined)?.RESP === 3) {
        throw new ConfigurationError('The node-redis client passed to the redis transport speaks RESP3. Create it with the default protocol (RESP: 2).');
      }
      return new NodeRedisCommandClient(options.client, false, logger, where);
    }
    throw new TransportError(
      'The redis transport option "client" is neither an ioredis client (Redis, Cluster) nor a node-redis v5 client. Pass one of those, or pass "url" instead.',
      { code: ErrorCodes.CONFIG_INVALID, retryable: false },
    );
  }
  const url = options.url ?? DEFAULT_URL;
  // No auto-pipelining on a single node: every command goes through #write, which corks the
  // tick's commands into one socket write itself. A cluster routes through ioredis's call().
  const common: RedisOptions = { lazyConnect: true, connectionName: 'lightbus' };
  if (options.cluster) {
    const parsed = new URL(url);
    const redisOptions: RedisOptions = { ...common };
    if (parsed.username) redisOptions.username = decodeURIComponent(parsed.username);
    if (parsed.password) redisOptions.password = decodeURIComponent(parsed.password);
    if (parsed.protocol === 'rediss:') redisOptions.tls = {};
    const cluster = new Cluster([{ host: parsed.hostname, port: Number(parsed.port || 6379) }], {
      lazyConnect: true,
      enableAutoPipelining: true,
      redisOptions,
    });
    return new IoredisCommandClient(cluster, true, logger, `${where} ${redactUrl(url)}`);
  }
  return new IoredisCommandClient(new Redis(url, common), true, logger, `${where} ${redactUrl(url)}`);
}

/** True when `error` is a Redis error reply starting with `prefix` (e.g. `BUSYGROUP`). */
export function isReplyError(error: unknown, prefix: string): boolean {
  return error instanceof Error && error.message.startsWith(prefix);
}

/**
 * Redis refused the command itself: an ACL without the permission (`NOPERM`), a renamed,
 * unknown or proxy-unsupported command. Retrying will not help; a connection problem or a
 * temporary condition (`MISCONF`, `BUSY`, `LOADING`) is not a refusal.
 */
export function isRefusal(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /NOPERM|no permissions|unknown command|unknown subcommand|unsupported command|ERR unknown/i.test(message);
}

/** A Lua script, sent by its SHA1 (`EVALSHA`) and by its source (`EVAL`) when Redis lacks it. */
export class RedisScript {
  /** SHA1 of the source: what `EVALSHA` names it by. */
  readonly sha: string;

  /** @param source the Lua source */
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** `EVALSHA <sha> <numkeys> <keys...> <args...>`, or `EVAL <source> ...` (which also caches it) when `load`. */
  command(keys: readonly string[], args: readonly string[], load = false): Command {
    return [load ? 'EVAL' : 'EVALSHA', load ? this.source : this.sha, keys.length, ...keys, ...args];
  }

  /** Runs it on `conn`: by SHA1, and once more by source when Redis answers `NOSCRIPT`. */
  async run(conn: CommandClient, keys: readonly string[], args: readonly string[] = []): Promise<unknown> {
    try {
      return await conn.send(this.command(keys, args));
    } catch (error) {
      if (!isReplyError(error, 'NOSCRIPT')) throw error;
      return conn.send(this.command(keys, args, true));
    }
  }
}

/** Wraps a client-library error into a {@link TransportError} naming the operation. */
export function wrapError(error: unknown, what: string): LightbusError {
  if (LightbusError.isInstance(error)) return error;
  return new TransportError(`Redis ${what} failed: ${redactUrl(describeError(error)).replace(/\.+$/, '')}. Check that Redis is reachable; the operation may be retried.`, {
    cause: safeCause(error),
  });
}

/** Throws the first failed reply of a pipeline, wrapped. */
export function checkReplies(replies: PipelineReply[], what: string): unknown[] {
  return replies.map((r) => {
    if (!r.ok) throw wrapError(r.error, what);
    return r.value;
  });
}

function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
