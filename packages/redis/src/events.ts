/**
 * Events over Redis Streams, in the Python Lightbus format, with consumer groups
 * (`{service}-{listener}`), acknowledgement after the handler, reclaim of abandoned entries,
 * delayed retries, a dead-letter stream and history.
 *
 * @module
 */
import {
  ErrorCodes,
  Notifier,
  TimeoutError,
  describeError,
  sleep,
  type EventCapabilities,
  type EventMessage,
  type EventSendOptions,
  type EventSubscription,
  type EventTransport,
  type HistoricalEvent,
  type HistoryQuery,
  type ReceivedEvent,
  type StartPosition,
  type TransportContext,
} from '@lightbus/core';
import { RedisScript, isRefusal, isReplyError, wrapError, type Command, type CommandClient } from './client.js';
import { ABORTED, RedisTransportBase, abortable, backoffMs } from './base.js';
import type { RedisTransportOptions } from './options.js';
import { StreamReplyDecoder, type RawEntry, type ReadReply } from './stream-reply.js';
import { XADD_MANY_SCRIPT, deadLetterKey, decodeEventFields, encodeEventFields, eventScriptArgs, streamIdTime, streamKey } from './wire.js';

/** One row of the extended XPENDING form. */
type PendingRow = [id: string, consumer: string, idleMs: number, deliveries: number];

/** The Lua script Python Lightbus uses to destroy a group that has no consumers left. */
const DESTROY_EMPTY_GROUP = `
local stream_name = KEYS[1]
local group_name = ARGV[1]
local consumers = redis.call('xinfo', 'consumers', stream_name, group_name)
if table.getn(consumers) == 0 then
    redis.call('xgroup', 'destroy', stream_name, group_name)
end
`;

/** Largest possible sequence part of a stream id. */
const MAX_SEQ = '18446744073709551615';

/** An event queued for sending: its stream, its fields, and its sender's promise. */
interface Outgoing {
  stream: string;
  fields: string[];
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * How long a stopping listener waits for the reply of a read in flight (whose entries Redis may
 * have delivered already) before dropping the connection. A blocked read stays blocked: only a
 * stop while idle pays it in full.
 */
const READ_GRACE_MS = 50;
/** Most entries one call of the XADD script carries. */
const MAX_SCRIPT_ENTRIES = 500;
/**
 * Queued events that go out at once rather than at the end of the tick. Measured with 1,000 fires
 * in flight: 100 gave 10–35% more events/s than one flush per tick (Redis and the client then
 * work at the same time instead of in turn); 50 and 200 gained less.
 */
const EAGER_FLUSH_ENTRIES = 100;
/** Entries with more fields than this go as plain XADDs (Lua's unpack() has a stack limit). */
const MAX_SCRIPT_ENTRY_FIELDS = 1000;
/** The XADD script, always sent by its source (see {@link XADD_MANY_SCRIPT}). */
const XADD_MANY = new RedisScript(XADD_MANY_SCRIPT);

/**
 * The size of an entry's fields in bytes, exact only when it may exceed `limit`: a string's
 * UTF-8 size is at most three bytes per UTF-16 unit, so most entries need no byte counting.
 */
function entrySize(fields: readonly string[], limit: number): number {
  let units = 0;
  for (const f of fields) units += f.length;
  if (units * 3 <= limit) return units;
  let bytes = 0;
  for (const f of fields) bytes += Buffer.byteLength(f);
  return bytes;
}

/** What a {@link StreamEvent} asks its transport to do. */
interface Settler {
  ack(stream: string, group: string, id: string): Promise<void>;
  /** Retries the event after `delayMs`; when its listener has stopped, hands it back to the group instead. */
  retryLater(event: StreamEvent, delayMs: number): Promise<void>;
  deadLetter(loop: Loop, stream: string, id: string, fields: string[], error: string, deliveryCount: number): Promise<void>;
}

/** An entry handed to a listener; settled once (later calls do nothing). */
class StreamEvent implements ReceivedEvent {
  #settled = false;
  constructor(
    readonly settler: Settler,
    readonly loop: Loop,
    readonly stream: string,
    readonly position: string,
    readonly fields: string[],
    readonly message: EventMessage,
    readonly deliveryCount: number,
    /** `performance.now()` when Redis delivered it to this consumer (read or claimed). */
    readonly readAt: number,
  ) {}

  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    return true;
  }

  ack(): Promise<void> {
    return this.#settle() ? this.settler.ack(this.stream, this.loop.group, this.position) : Promise.resolve();
  }

  nack({ delayMs }: { delayMs: number; error: unknown }): Promise<void> {
    return this.#settle() ? this.settler.retryLater(this, Math.max(0, delayMs)) : Promise.resolve();
  }

  async deadLetter(error: unknown): Promise<void> {
    if (!this.#settle()) return;
    await this.settler.deadLetter(this.loop, this.stream, this.position, this.fields, describeError(error), this.deliveryCount);
  }
}

/** The acknowledgements of one tick for one stream and group: one XACK, one shared promise. */
interface AckBatch {
  stream: string;
  group: string;
  ids: string[];
  done: Promise<void>;
  settle: (error?: Error) => void;
}

/** A batch on its way to the listener, with a hook called when it was handed over. */
interface Ready {
  events: StreamEvent[];
  taken?: () => void;
}

/** State of one consume loop. */
interface Loop {
  group: string;
  consumer: string;
  streams: string[];
  /** Per API name, the event names this loop's listener wants. */
  wanted: Map<string, Set<string>>;
  batchSize: number;
  signal: AbortSignal;
  ready: Ready[];
  notifier: Notifier;
  /** The last id delivered per stream: where a group is recreated after NOGROUP. */
  lastIds: Map<string, string>;
  /** Entries held by a nack timer (not reclaimed from ourselves meanwhile), and when each is due. */
  timers: Map<NodeJS.Timeout, { event: StreamEvent; dueAt: number }>;
  /** Per stream, while the group is behind the trimming: events found trimmed unread, as last reported. */
  trimmedUnread: Map<string, number>;
  listenerName: string;
}

/** The Redis event transport. Build it with {@link createRedisEventTransport}. */
export class RedisEventTransport extends RedisTransportBase implements EventTransport {
  /**
   * Declared capabilities. `durable` holds when Redis persists (AOF with `appendfsync everysec`
   * or `always`); with RDB snapshots only, events since the last snapshot are lost on a crash.
   */
  readonly capabilities: EventCapabilities = {
    consumerGroups: true,
    history: true,
    replay: true,
    deadLetter: true,
    redelivery: true,
    durable: true,
  };
  /** Acknowledgements queued this tick, per stream, then per group (no key string built per event). */
  readonly #acks = new Map<string, Map<string, AckBatch>>();
  /** Entries of stopped listeners waiting to be handed back (see #handBack), per stream, delivery and idle time. */
  readonly #handBacks = new Map<string, { first: StreamEvent; idle: number; ids: string[]; done: Promise<void>; settle: () => void }>();
  #ackScheduled = false;
  readonly #outbox: Outgoing[] = [];
  /** False once Redis refused scripts (disabled, or not permitted by ACL): plain XADDs then. */
  #scripts = true;
  /** Settles once the last flush sent as a script call is done, its refused entries resent included. */
  #scriptedTail: Promise<void> = Promise.resolve();

  /**
   * @param options see {@link RedisTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: RedisTransportOptions, context: TransportContext) {
    super(options, context, 'event');
    this.#maxlen = this.settings.maxStreamLength === null ? '' : String(this.settings.maxStreamLength);
    this.#trimArgs = this.#maxlen === '' ? [] : ['MAXLEN', '~', this.#maxlen];
  }

  /** `max_stream_length` as sent (`''` when trimming is off, as the XADD script takes it). */
  readonly #maxlen: string;
  /** `MAXLEN ~ <max>` for every XADD, or nothing when trimming is off. */
  readonly #trimArgs: readonly string[];

  /** The stream an event goes to. */
  streamOf(apiName: string, eventName: string): string {
    return streamKey(apiName, eventName, this.settings.streamUse);
  }

  /**
   * `XADD {stream} MAXLEN ~ <max> * id <id> api_name <api> event_name <event> version <v> :<param> <json> ...`.
   * Concurrent sends share round trips: XADDs issued in the same tick go out as one pipeline.
   */
  async send(message: EventMessage, options: EventSendOptions = {}): Promise<void> {
    this.assertOpen();
    const stream = this.streamOf(message.apiName, message.eventName);
    const sending = this.#enqueue(stream, encodeEventFields(message));
    try {
      if (options.timeoutMs === undefined) await sending;
      else {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new TimeoutError(`Redis did not accept event ${message.apiName}.${message.eventName} within ${options.timeoutMs} ms. Check that Redis is reachable.`, { code: ErrorCodes.TRANSPORT_ERROR })),
            options.timeoutMs,
          );
        });
        try {
          await Promise.race([sending, timeout]);
        } finally {
          clearTimeout(timer);
        }
      }
    } catch (error) {
      if (error instanceof TimeoutError) throw error;
      throw wrapError(error, `sending event ${message.apiName}.${message.eventName}`);
    }
  }

  /**
   * Queues an entry; entries queued before the next `process.nextTick` go out together (many
   * concurrent fires, one command). A long burst goes
   * out every `EAGER_FLUSH_ENTRIES` entries instead of all at the end of the tick, so Redis
   * writes the first ones while the rest are still being encoded.
   */
  #enqueue(stream: string, fields: string[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const length = this.#outbox.push({ stream, fields, resolve, reject });
      if (length === 1) process.nextTick(() => void this.#flushOutbox());
      else if (length >= EAGER_FLUSH_ENTRIES) void this.#flushOutbox();
    });
  }

  #xadd(entry: Outgoing): Command {
    return ['XADD', entry.stream, ...this.#trimArgs, '*', ...entry.fields];
  }

  /**
   * Sends the queued entries. Several entries for one stream go as one {@link XADD_MANY_SCRIPT}
   * call (the same stream entries as one XADD each, at a fraction of the client's cost per
   * event); a lone entry, or every entry when scripts are unavailable, as plain XADDs. All in one
   * pipeline; each sender gets its own entry's outcome.
   */
  async #flushOutbox(): Promise<void> {
    const batch = this.#outbox.splice(0);
    if (batch.length === 0) return;
    try {
      if (this.#scripts) {
        const sending = this.#sendEntries(batch, 'eval');
        this.#scriptedTail = sending.then(
          () => undefined,
          () => undefined,
        );
        await sending;
      } else {
        // Script calls still in flight when Redis first refused one resend their entries as
        // plain XADDs once their own refusal comes back; later events go after those.
        await this.#scriptedTail;
        await this.#sendEntries(batch, 'xadd');
      }
    } catch (error) {
      for (const b of batch) b.reject(error);
    }
  }

  /**
   * `eval`: the script goes by its source (`EVAL`, never `EVALSHA`). Redis finds it in its script
   * cache by SHA1 either way, for a few hundred bytes more per command; but `EVAL` cannot be
   * answered `NOSCRIPT`. A `NOSCRIPT` retry would land its events after those of later flushes
   * already in flight, so events fired in order would reach the stream out of order after a
   * `SCRIPT FLUSH`, restart or failover.
   */
  async #sendEntries(batch: Outgoing[], mode: 'eval' | 'xadd'): Promise<void> {
    // What each command of the pipeline carries: one entry (XADD) or several (a script call).
    const groups: Outgoing[][] = [];
    const commands: Command[] = [];
    if (mode === 'xadd') {
      for (const entry of batch) {
        groups.push([entry]);
        commands.push(this.#xadd(entry));
      }
    } else {
      const byStream = new Map<string, Outgoing[]>();
      for (const entry of batch) {
        // Lua's unpack() has a stack limit: a (very) wide entry goes as a plain XADD.
        if (entry.fields.length > MAX_SCRIPT_ENTRY_FIELDS) {
          groups.push([entry]);
          commands.push(this.#xadd(entry));
          continue;
        }
        let list = byStream.get(entry.stream);
        if (!list) byStream.set(entry.stream, (list = []));
        list.push(entry);
      }
      for (const [stream, entries] of byStream) {
        for (let at = 0; at < entries.length; at += MAX_SCRIPT_ENTRIES) {
          const chunk = entries.slice(at, at + MAX_SCRIPT_ENTRIES);
          if (chunk.length === 1) {
            groups.push(chunk);
            commands.push(this.#xadd(chunk[0]!));
            continue;
          }
          groups.push(chunk);
          commands.push(XADD_MANY.command([stream], eventScriptArgs(this.#maxlen, chunk.map((e) => e.fields)), true));
        }
      }
    }
    const replies = await this.redis.pipeline(commands);
    let retry: Outgoing[] | undefined;
    groups.forEach((entries, i) => {
      const reply = replies[i]!;
      const scripted = commands[i]![0] !== 'XADD';
      if (!reply.ok) {
        if (scripted && isRefusal(reply.error)) {
          // Scripting is disabled or not permitted for this user: plain XADDs from now on.
          if (this.#scripts) this.context.logger.info(`Redis refused a script (${describeError(reply.error)}); sending events as one XADD each from now on.`);
          this.#scripts = false;
          (retry ??= []).push(...entries);
          return;
        }
        for (const e of entries) e.reject(reply.error);
        return;
      }
      if (!scripted) {
        entries[0]!.resolve(reply.value);
        return;
      }
      // Only the failures come back: `position, error` pairs (positions from 1).
      const failed = reply.value;
      if (!Array.isArray(failed) || failed.length % 2 !== 0) {
        const error = new Error(`Redis answered the event script with ${describeError(failed).slice(0, 80)} instead of a list of failures`);
        for (const e of entries) e.reject(error);
        return;
      }
      for (let k = 0; k < failed.length; k += 2) {
        const entry = entries[Number(failed[k]) - 1];
        if (entry) entry.reject(new Error(String(failed[k + 1])));
      }
      for (const e of entries) e.resolve(undefined);
    });
    // Only scripted entries are retried, and only as plain XADDs: no loop.
    if (retry) await this.#sendEntries(retry, 'xadd');
  }


  /**
   * Yields batches for one listener group. Start-up, as Python does: a cleanup pass, then per
   * stream `EXISTS` (+ the no-op `XADD {stream} * "" ""` when missing),
   * `XGROUP CREATE {stream} {group} <start>` (BUSYGROUP ignored) and at once
   * `XREADGROUP ... STREAMS {stream} 0` to re-read this consumer's unacknowledged entries, then a
   * reclaim pass (after the re-read, so nothing it claims is read twice). Then
   * `XREADGROUP ... COUNT n BLOCK ms STREAMS ... >` in a loop on a dedicated connection, a reclaim
   * pass every `reclaim_interval`, and nacked entries re-claimed to this consumer after their delay.
   */
  async *consume(subscription: EventSubscription): AsyncIterable<readonly ReceivedEvent[]> {
    const stop = new AbortController();
    const signal = AbortSignal.any([subscription.signal, this.closing.signal, stop.signal]);
    if (signal.aborted) return;
    await this.open();
    const streams = [...new Set(subscription.events.map((e) => this.streamOf(e.apiName, e.eventName)))];
    const loop: Loop = {
      group: `${this.context.serviceName}-${subscription.listenerName}`,
      consumer: this.context.processName,
      streams,
      wanted: wantedEvents(subscription.events),
      batchSize: Math.max(1, subscription.batchSize ?? this.settings.batchSize),
      signal,
      ready: [],
      notifier: new Notifier(),
      lastIds: new Map(),
      timers: new Map(),
      trimmedUnread: new Map(),
      listenerName: subscription.listenerName,
    };
    const tasks: Array<Promise<void>> = [];
    try {
      // Abortable: while Redis is unreachable the start-up commands wait for the reconnect.
      const started = await abortable(this.#startUp(loop, subscription.since), signal);
      if (started === ABORTED) return;
      // The group exists: entries added from now on are read (as "new", after its position).
      subscription.onReady?.();
      const readers = this.redis.cluster ? streams.map((s) => [s]) : [streams];
      for (const r of readers) tasks.push(this.#readLoop(loop, r));
      tasks.push(this.#reclaimLoop(loop));
      while (!signal.aborted) {
        const next = loop.ready.shift();
        if (!next) {
          await loop.notifier.wait(signal);
          continue;
        }
        next.taken?.();
        if (next.events.length > 0) yield next.events;
      }
    } finally {
      stop.abort();
      // What this consumer holds but will not handle goes back to the group (see #handBack):
      // batches read but not yet taken, and events waiting for a retry (due when they would have been).
      const handBacks: Array<Promise<void>> = [];
      for (const [timer, { event, dueAt }] of loop.timers) {
        clearTimeout(timer);
        handBacks.push(this.#handBack(event, dueAt - performance.now()));
      }
      loop.timers.clear();
      for (const r of loop.ready.splice(0)) {
        r.taken?.();
        for (const event of r.events) handBacks.push(event.nack({ delayMs: 0, error: undefined }));
      }
      // Readers end within READ_GRACE_MS (a read in flight hands its entries back, see #readLoop);
      // a reclaim pass waiting on an unreachable Redis is not waited for beyond one block timeout.
      await Promise.race([Promise.allSettled([...tasks, ...handBacks]), sleep(this.settings.blockMs + 500)]);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Start-up

  async #startUp(loop: Loop, since: StartPosition | undefined): Promise<void> {
    for (const stream of loop.streams) await this.#cleanup(stream, loop.group);
    const start = startId(since);
    for (const stream of loop.streams) {
      await this.#ensureGroup(loop, stream, start);
      await this.#readOwnPending(loop, stream);
    }
    // After the re-read: what the reclaim pass claims becomes ours too, and would be read twice.
    await this.#reclaim(loop);
    // Before the first read: once the group reads past a trimmed gap, Redis no longer counts it.
    await this.#checkTrimmed(loop).catch((error: unknown) => this.context.logger.debug(`Checking ${loop.group} for trimmed events skipped: ${this.describe(error)}`));
  }

  /**
   * Python's cleanup pass: in every group of the stream, consumers idle longer than
   * `consumer_ttl` are removed, and a group left without consumers is destroyed (Python's Lua
   * script). Our own group is never destroyed here: we read from it at once.
   */
  async #cleanup(stream: string, ownGroup: string): Promise<void> {
    let groups: unknown[];
    try {
      groups = (await this.redis.send(['XINFO', 'GROUPS', stream])) as unknown[];
    } catch (error) {
      if (!isReplyError(error, 'ERR no such key')) this.context.logger.debug(`Cleanup of ${stream} skipped: ${this.describe(error)}`);
      return;
    }
    for (const raw of groups) {
      const name = String(fieldOf(raw, 'name'));
      try {
        const consumers = (await this.redis.send(['XINFO', 'CONSUMERS', stream, name])) as unknown[];
        for (const c of consumers) {
          const idle = Number(fieldOf(c, 'idle'));
          // Unlike Python, a consumer that still holds pending entries is kept: deleting it would
          // drop them from the group (its group's listeners reclaim them first).
          if (idle > this.settings.consumerTtlMs && Number(fieldOf(c, 'pending')) === 0) {
            await this.redis.send(['XGROUP', 'DELCONSUMER', stream, name, String(fieldOf(c, 'name'))]);
            this.context.logger.info(`Removed consumer ${String(fieldOf(c, 'name'))} of group ${name} on ${stream}: idle for ${Math.round(idle / 86_400_000)} days.`);
          }
        }
        if (name !== ownGroup) await this.redis.send(['EVAL', DESTROY_EMPTY_GROUP, '1', stream, name]);
      } catch (error) {
        this.context.logger.debug(`Cleanup of group ${name} on ${stream} skipped: ${this.describe(error)}`);
      }
    }
  }

  /** Creates the stream (no-op entry) and the group when missing; BUSYGROUP is fine. */
  async #ensureGroup(loop: Loop, stream: string, start: string): Promise<void> {
    try {
      const exists = Number(await this.redis.send(['EXISTS', stream]));
      if (exists === 0) await this.redis.send(['XADD', stream, ...this.#trimArgs, '*', '', '']);
      // Create the group and its consumer (this process) in one pipeline, so no cleanup pass
      // (ours or Python's) sees the group empty and destroys it; the re-read of our pending
      // entries follows. (CREATECONSUMER needs Redis 6.2; without it the re-read creates it.)
      const [created] = await this.redis.pipeline([
        ['XGROUP', 'CREATE', stream, loop.group, start],
        ['XGROUP', 'CREATECONSUMER', stream, loop.group, loop.consumer],
      ]);
      if (created && !created.ok && !isReplyError(created.error, 'BUSYGROUP')) throw created.error;
      if (created?.ok) this.context.logger.debug(`Created group ${loop.group} on ${stream} at ${start}`);
    } catch (error) {
      throw wrapError(error, `creating group ${loop.group} on ${stream}`);
    }
  }

  /** Re-reads this consumer's unacknowledged entries (`XREADGROUP ... STREAMS {stream} 0`), in pages. */
  async #readOwnPending(loop: Loop, stream: string): Promise<void> {
    let from = '0';
    for (;;) {
      const reply = (await this.redis.send(['XREADGROUP', 'GROUP', loop.group, loop.consumer, 'COUNT', loop.batchSize, 'STREAMS', stream, from])) as ReadReply;
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) return;
      const counts = await this.#deliveryCounts(stream, loop, entries[0]![0], entries[entries.length - 1]![0], entries.length);
      const events = await this.#toReceived(loop, stream, entries, (id) => counts.get(id) ?? 2);
      this.#push(loop, { events });
      from = entries[entries.length - 1]![0];
      if (entries.length < loop.batchSize) return;
    }
  }

  async #deliveryCounts(stream: string, loop: Loop, first: string, last: string, count: number): Promise<Map<string, number>> {
    const rows = (await this.redis.send(['XPENDING', stream, loop.group, first, last, count, loop.consumer])) as PendingRow[];
    return new Map(rows.map((r) => [r[0], Number(r[3])]));
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  #push(loop: Loop, ready: Ready): void {
    if (loop.signal.aborted) {
      // The listener is gone: the entries go back to the group.
      ready.taken?.();
      for (const event of ready.events) void event.nack({ delayMs: 0, error: undefined });
      return;
    }
    loop.ready.push(ready);
    loop.notifier.notify();
  }

  /**
   * Reads new entries (`>`) on a dedicated blocking connection until the loop stops.
   *
   * Read-ahead: when a read comes back full (`COUNT` entries: more are likely waiting), the next
   * `XREADGROUP` goes out at once, before this batch is decoded and handled, so Redis builds the
   * next reply while the listener works (a backlog drains with Redis and the worker busy at the
   * same time rather than in turns). At most one batch is read ahead: it waits in memory, pending
   * for this consumer, until the listener takes the current one; on stop it goes back to the group.
   */
  async #readLoop(loop: Loop, streams: string[]): Promise<void> {
    let conn: CommandClient | undefined;
    const decoder = new StreamReplyDecoder();
    const command: Command = [
      'XREADGROUP', 'GROUP', loop.group, loop.consumer,
      'COUNT', loop.batchSize, 'BLOCK', this.settings.blockMs,
      'STREAMS', ...streams, ...streams.map(() => '>'),
    ];
    const send = (c: CommandClient): Promise<ReadReply> => {
      const read = c.sendBinary ? c.sendBinary(command).then((r) => decoder.decode(r)) : (c.send(command) as Promise<ReadReply>);
      // Read ahead, nobody awaits it until the batch before it is taken: never an unhandled rejection.
      read.catch(() => undefined);
      return read;
    };
    /** The read already sent (read-ahead), if any. */
    let next: Promise<ReadReply> | undefined;
    let attempt = 0;
    try {
      while (!loop.signal.aborted) {
        try {
          conn ??= await this.acquireBlocking(loop.signal);
          if (!next) {
            // Let the events just handed over run first: their handlers start in microtasks, and a
            // socket write costs tens of microseconds (one event at a time, p50 fire → handler
            // went from 0.46 to 0.35 ms on the bench machine; events in bulk unchanged).
            await new Promise<void>((resolve) => process.nextTick(resolve));
            if (loop.signal.aborted) break;
            next = send(conn);
          }
          const read = next;
          next = undefined;
          const reply = await abortable(read, loop.signal);
          if (reply === ABORTED) {
            await this.#handBackRead(loop, read);
            break;
          }
          attempt = 0;
          if (!reply) continue;
          let total = 0;
          for (const [, entries] of reply) total += entries.length;
          if (total >= loop.batchSize) {
            next = send(conn);
            // Now, not at the end of this tick: the batch's handlers run before the tick ends.
            conn.flush?.();
          }
          const events: StreamEvent[] = [];
          for (const [stream, entries] of reply) {
            if (entries.length > 0) loop.lastIds.set(stream, entries[entries.length - 1]![0]);
            events.push(...(await this.#toReceived(loop, stream, entries, () => 1)));
          }
          if (events.length === 0) continue;
          // Back-pressure: hand this batch over and wait until the listener has taken it.
          await new Promise<void>((resolve) => this.#push(loop, { events, taken: resolve }));
        } catch (error) {
          if (loop.signal.aborted) break;
          // (A read ahead, if any, stays: on the same connection it is answered after this one.)
          if (isReplyError(error, 'NOGROUP')) {
            this.context.logger.warn(`The group ${loop.group} or its stream vanished (Redis restarted or flushed?); recreating it.`);
            await sleep(backoffMs(attempt++), loop.signal);
            for (const s of streams) {
              await this.#ensureGroup(loop, s, loop.lastIds.get(s) ?? '$').catch((e: unknown) =>
                this.context.logger.warn(`Recreating group ${loop.group} on ${s} failed: ${this.describe(e)}`),
              );
            }
            continue;
          }
          if (conn) this.releaseBlocking(conn, true);
          conn = undefined;
          next = undefined; // it fails with the connection
          const delay = backoffMs(attempt++);
          this.context.logger.warn(`Reading events for listener ${loop.listenerName} failed: ${this.describe(error)}. Retrying in ${delay} ms.`);
          await sleep(delay, loop.signal);
        }
      }
      // Stopped with a read ahead in flight: its entries go back too.
      if (next) await this.#handBackRead(loop, next);
    } finally {
      if (conn) this.releaseBlocking(conn, true);
    }
  }

  /**
   * The loop stopped with `read` in flight. Redis may have answered already, its reply still on
   * the way: those entries are pending for this consumer. Waits for it a moment (READ_GRACE_MS)
   * and hands them back (see #push); dropping the connection at once would strand them for
   * acknowledgement_timeout.
   */
  async #handBackRead(loop: Loop, read: Promise<ReadReply>): Promise<void> {
    const reply = await Promise.race([read.catch(() => null), sleep(READ_GRACE_MS).then(() => null)]);
    for (const [stream, entries] of reply ?? []) this.#push(loop, { events: await this.#toReceived(loop, stream, entries, () => 1) });
  }

  /** Every `reclaim_interval`: takes over entries other consumers left unacknowledged too long. */
  async #reclaimLoop(loop: Loop): Promise<void> {
    let attempt = 0;
    while (!loop.signal.aborted) {
      await sleep(attempt === 0 ? this.settings.reclaimIntervalMs : backoffMs(attempt), loop.signal);
      if (loop.signal.aborted) break;
      try {
        await this.#reclaim(loop);
        await this.#checkTrimmed(loop);
        attempt = 0;
      } catch (error) {
        attempt++;
        this.context.logger.warn(`Reclaiming events for listener ${loop.listenerName} failed: ${this.describe(error)}`);
      }
    }
  }

  /**
   * Warns when the group fell so far behind that Redis trimmed events it had not read yet (the
   * firing side's `MAXLEN ~ <max_stream_length>`): they are lost to this listener. The sign: the
   * last entry delivered to the group (`XINFO GROUPS`) is older than the stream's first entry
   * (`XINFO STREAM`), so what came between is gone. How many, where Redis 7 tracks the group's
   * read counter (`entries-read`): the entries removed from the stream (`entries-added` -
   * `length`) less those the group read. Checked at start-up, before the first read (a worker
   * that was away), and with every reclaim pass (a group that keeps falling behind); logged once
   * per stream until the group catches up, then again if it falls behind again. Redis before 7
   * (no counters): the sign alone.
   */
  async #checkTrimmed(loop: Loop): Promise<void> {
    for (const stream of loop.streams) {
      let groups: unknown;
      let info: unknown;
      try {
        [groups, info] = await Promise.all([this.redis.send(['XINFO', 'GROUPS', stream]), this.redis.send(['XINFO', 'STREAM', stream])]);
      } catch (error) {
        if (isReplyError(error, 'ERR no such key')) continue;
        throw error;
      }
      const mine = Array.isArray(groups) ? groups.find((g) => String(fieldOf(g, 'name')) === loop.group) : undefined;
      const first = fieldOf(info, 'first-entry');
      const delivered = fieldOf(mine, 'last-delivered-id');
      if (!Array.isArray(first) || typeof first[0] !== 'string' || typeof delivered !== 'string') continue;
      if (compareIds(delivered, first[0]) >= 0) {
        loop.trimmedUnread.delete(stream); // caught up with the trimming: warn again next time
        continue;
      }
      const added = fieldOf(info, 'entries-added');
      const read = fieldOf(mine, 'entries-read');
      const lost = typeof added === 'number' && typeof read === 'number' ? added - Number(fieldOf(info, 'length')) - read : undefined;
      const reported = loop.trimmedUnread.get(stream);
      if (reported !== undefined && (lost === undefined || lost <= reported)) continue;
      loop.trimmedUnread.set(stream, lost ?? 0);
      const count = lost === undefined ? 'events' : `${lost - (reported ?? 0)} event(s)`;
      this.context.logger.warn(
        `Listener ${loop.listenerName} fell behind on ${stream}: ${count} were trimmed by Redis before group ${loop.group} read them (the firing services' max_stream_length), so this listener never gets them. Run more workers or raise the listener's concurrency, or raise max_stream_length where the events are fired.`,
        { stream, group: loop.group, ...(lost === undefined ? {} : { trimmedUnread: lost }) },
      );
    }
  }

  /**
   * `XPENDING {stream} {group} - + <reclaim_batch_size>` (paged), and for entries of other consumers idle longer
   * than `acknowledgement_timeout`, `XCLAIM {stream} {group} {me} <timeout> <ids...>`. Ids the
   * XCLAIM does not return (trimmed entries) are acknowledged and dropped.
   */
  async #reclaim(loop: Loop): Promise<void> {
    for (const stream of loop.streams) {
      let start = '-';
      for (;;) {
        let rows: PendingRow[];
        try {
          rows = (await this.redis.send(['XPENDING', stream, loop.group, start, '+', this.settings.reclaimBatchSize])) as PendingRow[];
        } catch (error) {
          if (isReplyError(error, 'NOGROUP')) break;
          throw error;
        }
        const stale = rows.filter((r) => r[1] !== loop.consumer && Number(r[2]) >= this.settings.ackTimeoutMs);
        if (stale.length > 0) {
          const ids = stale.map((r) => r[0]);
          const claimed = (await this.redis.send(['XCLAIM', stream, loop.group, loop.consumer, this.settings.ackTimeoutMs, ...ids])) as Array<RawEntry | null>;
          const got = claimed.filter((e): e is RawEntry => Array.isArray(e) && e[1] !== null);
          const gotIds = new Set(got.map((e) => e[0]));
          const counts = new Map(stale.map((r) => [r[0], Number(r[3]) + 1]));
          // Claimed by someone else in between (idle reset), or trimmed: XCLAIM left it out.
          const gone = ids.filter((id) => !gotIds.has(id) && !claimed.some((e) => Array.isArray(e) && e[0] === id));
          const trimmed = claimed.filter((e): e is RawEntry => Array.isArray(e) && e[1] === null).map((e) => e[0]);
          if (trimmed.length > 0) await this.redis.send(['XACK', stream, loop.group, ...trimmed]);
          if (gone.length > 0) await this.#ackGone(loop, stream, gone);
          if (got.length > 0) {
            this.context.logger.info(`Reclaimed ${got.length} unacknowledged event(s) on ${stream} for listener ${loop.listenerName}.`);
            const events = await this.#toReceived(loop, stream, got, (id) => counts.get(id) ?? 2);
            this.#push(loop, { events });
          }
        }
        if (rows.length < this.settings.reclaimBatchSize) break;
        start = nextId(rows[rows.length - 1]![0]);
      }
    }
  }

  /** Ids XCLAIM did not return: trimmed from the stream (ack them) or taken by another consumer (leave them). */
  async #ackGone(loop: Loop, stream: string, ids: string[]): Promise<void> {
    const commands: Command[] = ids.map((id) => ['XRANGE', stream, id, id]);
    const replies = await this.redis.pipeline(commands);
    const trimmed = ids.filter((_, i) => {
      const r = replies[i]!;
      return r.ok && Array.isArray(r.value) && r.value.length === 0;
    });
    if (trimmed.length > 0) {
      await this.redis.send(['XACK', stream, loop.group, ...trimmed]);
      this.context.logger.info(`Acknowledged ${trimmed.length} pending event(s) trimmed from ${stream} before they could be reclaimed.`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Decoding and settling

  /** Turns raw entries into events; no-ops, unwanted, deleted and malformed entries are settled here. */
  async #toReceived(loop: Loop, stream: string, entries: RawEntry[], deliveries: (id: string) => number): Promise<StreamEvent[]> {
    const readAt = performance.now();
    const out: StreamEvent[] = [];
    const skip: string[] = [];
    for (const [id, fields] of entries) {
      if (fields === null) {
        skip.push(id); // deleted from the stream while pending
        continue;
      }
      const size = entrySize(fields, this.settings.maxMessageBytes);
      if (size > this.settings.maxMessageBytes) {
        await this.#deadLetterMalformed(loop, stream, id, fields, `the entry is ${size} bytes, larger than max_message_bytes (${this.settings.maxMessageBytes})`, true);
        continue;
      }
      const decoded = decodeEventFields(fields);
      if (decoded.kind === 'noop') {
        skip.push(id);
        continue;
      }
      if (decoded.kind === 'malformed') {
        await this.#deadLetterMalformed(loop, stream, id, fields, decoded.reason, false);
        continue;
      }
      const { message } = decoded;
      if (loop.wanted.get(message.apiName)?.has(message.eventName) !== true) {
        skip.push(id);
        continue;
      }
      out.push(new StreamEvent(this.#settler, loop, stream, id, fields, message, deliveries(id), readAt));
    }
    if (skip.length > 0) void this.#ack(stream, loop.group, skip).catch(() => undefined);
    return out;
  }

  /** How a {@link StreamEvent} settles: one object per transport (no closures per event). */
  readonly #settler: Settler = {
    ack: (stream, group, id) => this.#ackOne(stream, group, id),
    retryLater: (event, delayMs) => this.#retryLater(event, delayMs),
    deadLetter: (loop, stream, id, fields, error, deliveryCount) => this.#deadLetter(loop, stream, id, fields, error, deliveryCount),
  };

  /**
   * Keeps the entry pending and, after `delayMs`, claims it back to this consumer
   * (`XCLAIM ... <delay> {id}`: only if nobody else took it meanwhile; the delivery count rises).
   * Once the listener has stopped, the entry is handed back to the group instead (see #handBack).
   */
  #retryLater(event: StreamEvent, delayMs: number): Promise<void> {
    const { loop, stream, position: id } = event;
    if (loop.signal.aborted) return this.#handBack(event, delayMs);
    const timer = setTimeout(() => {
      loop.timers.delete(timer);
      if (loop.signal.aborted) {
        void this.#handBack(event, 0);
        return;
      }
      void (async () => {
        try {
          const minIdle = Math.max(0, delayMs - 5);
          const claimed = (await this.redis.send(['XCLAIM', stream, loop.group, loop.consumer, minIdle, id])) as Array<RawEntry | null>;
          const got = claimed.filter((e): e is RawEntry => Array.isArray(e) && e[1] !== null);
          if (got.length === 0) return; // acknowledged, trimmed or taken over meanwhile
          const events = await this.#toReceived(loop, stream, got, () => event.deliveryCount + 1);
          this.#push(loop, { events });
        } catch (error) {
          this.context.logger.warn(`Retrying event ${id} on ${stream} failed: ${this.describe(error)}. It stays pending and will be reclaimed.`);
        }
      })();
    }, delayMs);
    loop.timers.set(timer, { event, dueAt: performance.now() + delayMs });
    return Promise.resolve();
  }

  /**
   * Hands an entry this consumer will not handle (its listener stopped) back to the group:
   * `XCLAIM {stream} {group} {me} <held for> {ids} IDLE <idle> JUSTID` makes it look unacknowledged
   * for `acknowledgement_timeout` already (less what is left of a retry delay, `dueInMs`), so
   * the next reclaim pass of any consumer of the group takes it: a worker starting up at once,
   * running ones within `reclaim_interval`. Redis cannot return an entry to the group's unread
   * part; without this it would wait a whole `acknowledgement_timeout` first. The minimum idle
   * time is how long this consumer has held the entry, so one that another consumer reclaimed
   * meanwhile is left alone; `JUSTID` keeps its delivery count. Entries handed back in the same
   * tick share one XCLAIM per stream and delivery. Never rejects: on failure the entry simply
   * stays pending and is reclaimed after the timeout.
   */
  #handBack(event: StreamEvent, dueInMs: number): Promise<void> {
    const idle = Math.round(Math.max(0, this.settings.ackTimeoutMs - Math.max(0, dueInMs)));
    const key = `${event.loop.group}\u0000${event.stream}\u0000${event.readAt}\u0000${idle}`;
    let batch = this.#handBacks.get(key);
    if (!batch) {
      let settle!: () => void;
      const done = new Promise<void>((resolve) => (settle = resolve));
      batch = { first: event, idle, ids: [], done, settle };
      this.#handBacks.set(key, batch);
      if (this.#handBacks.size === 1) setImmediate(() => void this.#flushHandBacks());
    }
    batch.ids.push(event.position);
    return batch.done;
  }

  async #flushHandBacks(): Promise<void> {
    if (this.#handBacks.size === 0) return; // flushed by close() already
    const batches = [...this.#handBacks.values()];
    this.#handBacks.clear();
    const now = performance.now();
    const commands = batches.map(({ first: { loop, stream, readAt }, idle, ids }): Command => [
      'XCLAIM', stream, loop.group, loop.consumer, Math.max(0, Math.floor(now - readAt) - 2), ...ids, 'IDLE', idle, 'JUSTID',
    ]);
    const replies = await this.redis.pipeline(commands).catch((error: unknown) => batches.map(() => ({ ok: false as const, error })));
    batches.forEach((b, i) => {
      const r = replies[i]!;
      if (r.ok) {
        const count = Array.isArray(r.value) ? r.value.length : 0;
        this.context.logger.debug(`Listener ${b.first.loop.listenerName} stopped: handed ${count} of ${b.ids.length} event(s) on ${b.first.stream} back to group ${b.first.loop.group}.`);
      } else {
        this.context.logger.warn(
          `Handing ${b.ids.length} event(s) on ${b.first.stream} back to group ${b.first.loop.group} failed: ${this.describe(r.error)}. They stay pending and are reclaimed after acknowledgement_timeout.`,
        );
      }
      b.settle();
    });
  }

  /** Queues an acknowledgement; all those queued in the same tick go in one XACK per stream. */
  #ack(stream: string, group: string, ids: readonly string[]): Promise<void> {
    const batch = this.#ackBatch(stream, group);
    for (const id of ids) batch.ids.push(id);
    return batch.done;
  }

  /** As {@link #ack} for one entry (a listener acknowledging an event: no array per event). */
  #ackOne(stream: string, group: string, id: string): Promise<void> {
    const batch = this.#ackBatch(stream, group);
    batch.ids.push(id);
    return batch.done;
  }

  /** The XACK of this tick for `stream` and `group`, queued on first use. */
  #ackBatch(stream: string, group: string): AckBatch {
    let groups = this.#acks.get(stream);
    if (!groups) {
      groups = new Map();
      this.#acks.set(stream, groups);
    }
    let batch = groups.get(group);
    if (!batch) {
      // One promise per XACK, shared by every event it acknowledges (none per event).
      let settle!: (error?: Error) => void;
      const done = new Promise<void>((resolve, reject) => {
        settle = (error?: Error) => (error === undefined ? resolve() : reject(error));
      });
      batch = { stream, group, ids: [], done, settle };
      groups.set(group, batch);
    }
    if (!this.#ackScheduled) {
      this.#ackScheduled = true;
      setImmediate(() => void this.#flushAcks());
    }
    return batch;
  }

  async #flushAcks(): Promise<void> {
    this.#ackScheduled = false;
    const batches: AckBatch[] = [];
    for (const groups of this.#acks.values()) for (const b of groups.values()) batches.push(b);
    this.#acks.clear();
    const replies = await this.redis
      .pipeline(batches.map((b) => ['XACK', b.stream, b.group, ...b.ids] as Command))
      .catch((error: unknown) => batches.map(() => ({ ok: false as const, error: error instanceof Error ? error : new Error(String(error)) })));
    batches.forEach((b, i) => {
      const r = replies[i]!;
      if (r.ok) b.settle();
      else {
        // Nobody may be waiting (acks whose outcome the caller ignores): never an unhandled rejection.
        b.done.catch(() => undefined);
        b.settle(wrapError(r.error, `acknowledging events on ${b.stream}`));
      }
    });
  }

  /**
   * Dead-letters one entry: `XADD {stream}:dead_letters MAXLEN ~ <max> * <entry fields...> error <text>
   * attempts <n> listener <group> stream_id <id> stream <stream>`, then XACK.
   */
  async #deadLetter(loop: Loop, stream: string, id: string, fields: string[], error: string, attempts: number): Promise<void> {
    const extra = ['error', error, 'attempts', String(attempts), 'listener', loop.group, 'stream_id', id, 'stream', stream];
    try {
      await this.redis.send(['XADD', deadLetterKey(stream), ...this.#trimArgs, '*', ...fields, ...extra]);
    } catch (e) {
      throw wrapError(e, `dead-lettering event ${id} on ${stream}`);
    }
    await this.#ack(stream, loop.group, [id]);
  }

  async #deadLetterMalformed(loop: Loop, stream: string, id: string, fields: string[], reason: string, huge: boolean): Promise<void> {
    this.context.logger.warn(`Malformed entry ${id} on ${stream} (listener ${loop.listenerName}): ${reason}. Moved to ${deadLetterKey(stream)}.`);
    // A huge entry is not copied: its metadata-like fields (cut short) and its id point to it.
    const kept = huge
      ? fields.flatMap((f, i) => (i % 2 === 0 && !f.startsWith(':') ? [f.slice(0, 200), (fields[i + 1] ?? '').slice(0, 200)] : []))
      : fields;
    const safe = kept.length % 2 === 0 ? kept : kept.slice(0, -1);
    try {
      await this.#deadLetter(loop, stream, id, safe, `malformed entry: ${reason}`, 1);
    } catch (error) {
      this.context.logger.error(`Could not dead-letter malformed entry ${id} on ${stream}: ${this.describe(error)}. Acknowledging it anyway so the listener can go on.`);
      await this.#ack(stream, loop.group, [id]).catch(() => undefined);
    }
  }

  // -------------------------------------------------------------------------------------------
  // History

  /**
   * Reads past events with `XREVRANGE` (newest first, the default) or `XRANGE`, in pages of 100,
   * skipping no-op and malformed entries. With `stream_use: per_event` and no `eventName`,
   * every stream of the API is found with SCAN and merged by id.
   */
  async *history(query: HistoryQuery): AsyncIterable<HistoricalEvent> {
    this.assertOpen();
    await this.open();
    const newest = (query.order ?? 'newest-first') === 'newest-first';
    let streams: string[];
    if (this.settings.streamUse === 'per_api' || query.eventName !== undefined) {
      streams = [this.streamOf(query.apiName, query.eventName ?? '*')];
    } else streams = await this.#scanStreams(query.apiName);
    const low = query.since ? String(query.since.getTime()) : '-';
    const high = query.until ? String(query.until.getTime()) : '+';
    const cursors = streams.map((s) => this.#pages(s, newest, low, high));
    const heads: Array<{ it: AsyncIterator<RawEntry>; head: RawEntry | undefined }> = [];
    for (const it of cursors) {
      const first = await it.next();
      heads.push({ it, head: first.done ? undefined : first.value });
    }
    let count = 0;
    for (;;) {
      let pick: (typeof heads)[number] | undefined;
      for (const h of heads) {
        if (!h.head) continue;
        if (!pick || (newest ? compareIds(h.head[0], pick.head![0]) > 0 : compareIds(h.head[0], pick.head![0]) < 0)) pick = h;
      }
      if (!pick) return;
      const [id, fields] = pick.head!;
      const n = await pick.it.next();
      pick.head = n.done ? undefined : n.value;
      const decoded = decodeEventFields(fields);
      if (decoded.kind !== 'event') continue;
      if (decoded.message.apiName !== query.apiName) continue;
      if (query.eventName !== undefined && decoded.message.eventName !== query.eventName) continue;
      if (query.limit !== undefined && count >= query.limit) return;
      count++;
      const event: HistoricalEvent = { message: decoded.message, position: id };
      const time = streamIdTime(id);
      if (time) event.time = time;
      yield event;
    }
  }

  async *#pages(stream: string, newest: boolean, low: string, high: string): AsyncGenerator<RawEntry> {
    let lo = low;
    let hi = high;
    for (;;) {
      const page = (await this.redis.send(newest ? ['XREVRANGE', stream, hi, lo, 'COUNT', 100] : ['XRANGE', stream, lo, hi, 'COUNT', 100])) as RawEntry[];
      for (const e of page) yield e;
      if (page.length < 100) return;
      const last = page[page.length - 1]![0];
      if (newest) hi = `(${last}`;
      else lo = `(${last}`;
    }
  }

  async #scanStreams(apiName: string): Promise<string[]> {
    const pattern = `${globEscape(`${apiName}.`)}*${globEscape(':stream')}`;
    const found = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = (await this.redis.send(['SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000, 'TYPE', 'stream'])) as [string, string[]];
      cursor = next;
      for (const k of keys) found.add(k);
    } while (cursor !== '0');
    return [...found].sort();
  }

  /** Ends every consume loop and closes the connections. Pending acknowledgements are sent first. */
  override async close(): Promise<void> {
    if (this.#acks.size > 0) await Promise.race([this.#flushAcks(), sleep(1000)]);
    if (this.#handBacks.size > 0) await Promise.race([this.#flushHandBacks(), sleep(1000)]);
    await super.close();
  }
}

/** The events of a subscription, per API name. */
function wantedEvents(events: readonly { apiName: string; eventName: string }[]): Map<string, Set<string>> {
  const wanted = new Map<string, Set<string>>();
  for (const { apiName, eventName } of events) {
    let names = wanted.get(apiName);
    if (!names) wanted.set(apiName, (names = new Set()));
    names.add(eventName);
  }
  return wanted;
}

/** Where a new group starts: `$`, `0`, a stream id, or a time as the id just before `<ms>-0`. */
function startId(since: StartPosition | undefined): string {
  if (since === undefined || since === 'new') return '$';
  if (since === 'all') return '0';
  if ('time' in since) {
    const ms = since.time.getTime();
    return ms > 0 ? `${ms - 1}-${MAX_SEQ}` : '0';
  }
  return since.position;
}

/** The smallest id after `id`. */
function nextId(id: string): string {
  const [ms, seq] = id.split('-');
  return `${ms}-${BigInt(seq ?? '0') + 1n}`;
}

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map((p) => BigInt(p));
  const [bm, bs] = b.split('-').map((p) => BigInt(p));
  if (am! !== bm!) return am! < bm! ? -1 : 1;
  if (as! !== bs!) return as! < bs! ? -1 : 1;
  return 0;
}

function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** Reads a field of an XINFO reply (a flat name/value list in RESP2, a map in RESP3). */
function fieldOf(reply: unknown, name: string): unknown {
  if (Array.isArray(reply)) {
    for (let i = 0; i < reply.length - 1; i += 2) if (reply[i] === name) return reply[i + 1];
    return undefined;
  }
  if (reply instanceof Map) return reply.get(name);
  if (typeof reply === 'object' && reply !== null) return (reply as Record<string, unknown>)[name];
  return undefined;
}

/** Builds the Redis event transport. */
export function createRedisEventTransport(options: RedisTransportOptions, context: TransportContext): RedisEventTransport {
  return new RedisEventTransport(options, context);
}
