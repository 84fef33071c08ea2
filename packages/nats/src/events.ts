/**
 * Events over JetStream.
 *
 * - One stream per API, named `{stream_prefix}_event_{api}` with the API name's dots written as
 *   `-` (stream names cannot contain dots; API names cannot contain `-`), holding the subjects
 *   `{subject_prefix}.event.{api}.*`. An event is published to `{subject_prefix}.event.{api}.{event}`
 *   with its id as `Nats-Msg-Id`, so a retried send within the duplicate window is stored once.
 * - One durable pull consumer per listener group `{service}-{listener}` on each API stream
 *   (characters JetStream does not allow become `_`, plus a hash when anything changed), with
 *   explicit acknowledgement after the handler, `ack_wait` = `acknowledgement_timeout`.
 *   It filters on the one wanted event's subject; when a listener wants several events of one API,
 *   on several subjects (nats-server ≥ 2.10) or on the API's wildcard, skipping (acknowledging)
 *   the events it did not ask for.
 * - While a consume loop runs, the events it holds are kept alive with "in progress" pings, so
 *   a slow handler does not get its event redelivered elsewhere; once a consumer dies they come
 *   back after `acknowledgement_timeout`.
 * - `nack()` is a NAK with a delay; the delivery count comes from JetStream.
 * - `deadLetter()` writes the event, as it was received, to `{subject_prefix}.dead.{api}.{event}`
 *   in the stream `{stream_prefix}_dead_{api}`, with the headers in {@link DEAD_LETTER_HEADERS},
 *   and then acknowledges it. Malformed entries and events delivered more than `max_deliveries`
 *   times go there too, with the reason.
 *
 * @module
 */
import {
  AckPolicy,
  ConsumerEvents,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  headers as natsHeaders,
  nanos,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  type StoredMsg,
  type StreamConfig,
} from 'nats';
import {
  ConfigurationError,
  ErrorCodes,
  LightbusError,
  Notifier,
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
import { NatsTransportBase, wrapError } from './base.js';
import {
  consumerName,
  deadStreamName,
  deadSubject,
  deadWildcard,
  eventStreamName,
  eventSubject,
  eventWildcard,
  type NatsTransportOptions,
} from './options.js';
import { decodeEvent, encodeEvent } from './wire.js';

/** How long one pull request lives on the server (ms). Bounds how long a stopped session can still be delivered to. */
const PULL_EXPIRES_MS = 1000;

/** Messages a stopping consume loop gives back to its group once its pull requests expired. */
interface HandBack {
  messages: JsMsg[];
  flushed: boolean;
}

/** The headers stored with each dead-lettered event. */
export const DEAD_LETTER_HEADERS = {
  /** The error (or the reason the transport gave up), one line. */
  error: 'Lightbus-Error',
  /** How many deliveries were made. */
  attempts: 'Lightbus-Attempts',
  /** The listener group, `{service}-{listener}`. */
  listener: 'Lightbus-Listener',
  /** The stream the event came from. */
  stream: 'Lightbus-Stream',
  /** Its sequence in that stream. */
  sequence: 'Lightbus-Sequence',
  /** The subject it was published to. */
  subject: 'Lightbus-Subject',
} as const;

const WORTH_A_WARNING = new Set<string>([
  ConsumerEvents.HeartbeatsMissed,
  ConsumerEvents.ConsumerNotFound,
  ConsumerEvents.StreamNotFound,
  ConsumerEvents.ConsumerDeleted,
  ConsumerEvents.NoResponders,
]);

const GONE = new Set<string>([ConsumerEvents.ConsumerNotFound, ConsumerEvents.ConsumerDeleted, ConsumerEvents.StreamNotFound]);

const ERR_STREAM_NOT_FOUND = 10059;
const ERR_CONSUMER_NOT_FOUND = 10014;
const ERR_NO_MESSAGE = 10037;

function apiErrorCode(error: unknown): number | undefined {
  const api = (error as { api_error?: { err_code?: number } } | null)?.api_error;
  return api?.err_code;
}

function oneLine(text: string, max = 2000): string {
  const flat = text.replace(/[\r\n]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function versionAtLeast(version: string | undefined, major: number, minor: number): boolean {
  const m = /^v?(\d+)\.(\d+)/.exec(version ?? '');
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

/** Events over JetStream: a stream per API, a durable pull consumer per listener group. */
export class NatsEventTransport extends NatsTransportBase implements EventTransport {
  /** Declared capabilities; `durable` holds with file storage (the default). */
  readonly capabilities: EventCapabilities;
  readonly #streams = new Map<string, Promise<void>>();

  /**
   * @param options see {@link NatsTransportOptions}
   * @param context service and process names, logger
   */
  constructor(options: NatsTransportOptions, context: TransportContext) {
    super('event', options, context);
    this.capabilities = {
      consumerGroups: true,
      history: true,
      replay: true,
      deadLetter: true,
      redelivery: true,
      durable: this.resolved.storage === 'file',
    };
  }

  async #jsm(): Promise<{ nc: NatsConnection; jsm: JetStreamManager }> {
    const nc = this.openConnection ?? (await this.connection());
    try {
      return { nc, jsm: await nc.jetstreamManager() };
    } catch (error) {
      throw wrapError('reaching JetStream', error, 'Is JetStream enabled on the server (nats-server -js)?');
    }
  }

  /** Creates a stream unless it exists (with any configuration: an existing stream is left as it is). */
  #ensureStream(key: string, config: Partial<StreamConfig> & { name: string }): Promise<void> {
    let ready = this.#streams.get(key);
    if (!ready) {
      ready = (async () => {
        const { jsm } = await this.#jsm();
        try {
          await jsm.streams.info(config.name);
          return;
        } catch (error) {
          if (apiErrorCode(error) !== ERR_STREAM_NOT_FOUND) throw wrapError(`looking up the stream ${config.name}`, error);
        }
        try {
          await jsm.streams.add(config);
          this.context.logger.info(`Created JetStream stream ${config.name}`, { subjects: config.subjects });
        } catch (error) {
          // Another process may have created it meanwhile (with other limits): use theirs.
          try {
            await jsm.streams.info(config.name);
          } catch {
            throw wrapError(`creating the stream ${config.name}`, error, 'Check that no other stream holds these subjects and that JetStream has room.');
          }
        }
      })();
      this.#streams.set(key, ready);
      ready.catch(() => this.#streams.delete(key));
    }
    return ready;
  }

  #storage(): StorageType {
    return this.resolved.storage === 'file' ? StorageType.File : StorageType.Memory;
  }

  #ensureEventStream(apiName: string): Promise<void> {
    const o = this.resolved;
    const maxAge = o.streamMaxAgeMs > 0 ? nanos(o.streamMaxAgeMs) : 0;
    return this.#ensureStream(`event:${apiName}`, {
      name: eventStreamName(o, apiName),
      description: `Lightbus events of API ${apiName}`,
      subjects: [eventWildcard(o, apiName)],
      storage: this.#storage(),
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_msgs: o.maxStreamLength ?? -1,
      max_age: maxAge,
      duplicate_window: nanos(Math.min(120_000, o.streamMaxAgeMs > 0 ? o.streamMaxAgeMs : 120_000)),
      num_replicas: 1,
    });
  }

  #ensureDeadStream(apiName: string): Promise<void> {
    const o = this.resolved;
    return this.#ensureStream(`dead:${apiName}`, {
      name: deadStreamName(o, apiName),
      description: `Lightbus dead-lettered events of API ${apiName}`,
      subjects: [deadWildcard(o, apiName)],
      storage: this.#storage(),
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_msgs: o.maxStreamLength ?? -1,
      num_replicas: 1,
    });
  }

  /**
   * Publishes the event to its API's stream; resolves when JetStream has stored it. While the
   * server is unreachable or JetStream is not ready (a restart), it tries again within the time
   * budget (`timeoutMs`, default 10 s); the event id as `Nats-Msg-Id` makes retries store it once.
   */
  async send(message: EventMessage, options: EventSendOptions = {}): Promise<void> {
    if (this.closing.signal.aborted) throw this.closedError();
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    const subject = eventSubject(this.resolved, message.apiName, message.eventName);
    const data = encodeEvent(message);
    const what = `publishing event ${message.apiName}.${message.eventName}`;
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#ensureEventStream(message.apiName);
        const nc = this.openConnection ?? (await this.connection());
        const timeout = Math.max(100, Math.min(5000, deadline - Date.now()));
        await nc.jetstream().publish(subject, data, { msgID: message.id, timeout });
        return;
      } catch (error) {
        const code = (error as { code?: string }).code;
        // 503: no stream took it (deleted since we checked, or JetStream still starting).
        if (code === '503') this.#streams.delete(`event:${message.apiName}`);
        const retryable = code === '503' || code === 'TIMEOUT' || (LightbusError.isInstance(error) && error.retryable);
        if (!retryable || this.closing.signal.aborted || Date.now() + delay >= deadline) {
          throw wrapError(what, error, `Tried ${attempt} time(s). The event may not be stored; sending it again is safe (JetStream drops duplicates by event id).`);
        }
        this.context.logger.warn(`${what} failed (${describeError(error)}); trying again in ${delay} ms`);
        await sleep(delay, this.closing.signal);
        delay = Math.min(2000, delay * 2);
      }
    }
  }

  /** Creates the group's durable consumer on one API stream, or checks and adapts the existing one. */
  async #ensureConsumer(apiName: string, durable: string, group: string, eventNames: readonly string[], since: StartPosition | undefined): Promise<void> {
    const { nc, jsm } = await this.#jsm();
    const o = this.resolved;
    const stream = eventStreamName(o, apiName);
    const wanted = eventNames.map((e) => eventSubject(o, apiName, e));
    const multi = wanted.length > 1 && versionAtLeast(nc.info?.version, 2, 10);
    const filter: Pick<ConsumerConfig, 'filter_subject' | 'filter_subjects'> =
      wanted.length === 1 ? { filter_subject: wanted[0]! } : multi ? { filter_subjects: wanted } : { filter_subject: eventWildcard(o, apiName) };
    const ackWait = nanos(o.ackWaitMs);
    let existing: ConsumerInfo | undefined;
    try {
      existing = await jsm.consumers.info(stream, durable);
    } catch (error) {
      if (apiErrorCode(error) !== ERR_CONSUMER_NOT_FOUND) throw wrapError(`looking up the consumer ${durable} on ${stream}`, error);
    }
    if (!existing) {
      const config: Partial<ConsumerConfig> = {
        durable_name: durable,
        description: `Lightbus listener group ${group}`,
        ack_policy: AckPolicy.Explicit,
        ack_wait: ackWait,
        // Unlimited here: the transport dead-letters past max_deliveries itself, so JetStream
        // never silently stops delivering an event.
        max_deliver: -1,
        ...filter,
        ...this.#startPolicy(since),
      };
      try {
        await jsm.consumers.add(stream, config);
        this.context.logger.info(`Created JetStream consumer ${durable} on ${stream}`, { filter: filter.filter_subject ?? filter.filter_subjects });
        return;
      } catch (error) {
        try {
          existing = await jsm.consumers.info(stream, durable); // created by another process meanwhile
        } catch {
          throw wrapError(`creating the consumer ${durable} on ${stream}`, error);
        }
      }
    }
    const current = existing.config;
    const currentFilters = current.filter_subjects ?? (current.filter_subject ? [current.filter_subject] : []);
    // A filter that lets every wanted event through is kept as it is (events not asked for are
    // skipped); filters only ever widen, so processes of old and new versions never fight.
    const covers = currentFilters.length === 0 || currentFilters.includes(eventWildcard(o, apiName)) || wanted.every((w) => currentFilters.includes(w));
    if (covers) {
      if (current.ack_wait === ackWait) return;
      try {
        await jsm.consumers.update(stream, durable, { ...current, ack_wait: ackWait });
        this.context.logger.info(`Updated JetStream consumer ${durable} on ${stream}`, { ack_wait_ms: o.ackWaitMs });
      } catch (error) {
        this.context.logger.warn(`Could not change the ack wait of JetStream consumer ${durable} on ${stream} (${describeError(error)}); using it as it is`);
      }
      return;
    }
    const { filter_subject: _single, filter_subjects: _many, ...rest } = current;
    if (versionAtLeast(nc.info?.version, 2, 10)) {
      const union = [...new Set([...currentFilters, ...wanted])];
      try {
        await jsm.consumers.update(stream, durable, { ...rest, ack_wait: ackWait, filter_subjects: union });
        this.context.logger.info(`Widened the filter of JetStream consumer ${durable} on ${stream}`, { filter: union });
        return;
      } catch (error) {
        throw wrapError(`widening the filter of consumer ${durable} on ${stream} to ${union.join(', ')}`, error, `Delete the consumer (nats consumer rm ${stream} ${durable}) or give the listener a new name.`);
      }
    }
    // Servers before 2.10 accept a filter change but then deliver nothing: recreate the consumer
    // on the API's wildcard, starting after the last event it had acknowledged in order (events
    // acknowledged out of order after that are delivered again).
    const startSeq = existing.ack_floor.stream_seq + 1;
    try {
      await jsm.consumers.delete(stream, durable);
      await jsm.consumers.add(stream, {
        ...rest,
        ack_wait: ackWait,
        filter_subject: eventWildcard(o, apiName),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: startSeq,
        opt_start_time: undefined,
      });
      this.context.logger.warn(
        `Recreated JetStream consumer ${durable} on ${stream} on the API's wildcard (it filtered on ${currentFilters.join(', ')}, and this server cannot change a filter), resuming at sequence ${startSeq}`,
      );
    } catch (error) {
      throw wrapError(`recreating consumer ${durable} on ${stream} with a wider filter`, error, `Delete the consumer (nats consumer rm ${stream} ${durable}) or give the listener a new name.`);
    }
  }

  #startPolicy(since: StartPosition | undefined): Partial<ConsumerConfig> {
    if (since === undefined || since === 'new') return { deliver_policy: DeliverPolicy.New };
    if (since === 'all') return { deliver_policy: DeliverPolicy.All };
    if ('time' in since) return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: since.time.toISOString() };
    const seq = Number(since.position);
    if (!Number.isInteger(seq) || seq < 1) {
      throw new ConfigurationError(`A NATS listener cannot start at position "${since.position}": positions are JetStream stream sequences (integers from 1).`);
    }
    return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: seq };
  }

  /**
   * Yields batches for one listener group until the signal aborts. Events received but not yet
   * yielded when it aborts are handed back at once (NAK); yielded but unsettled ones come back
   * after `acknowledgement_timeout`.
   */
  async *consume(subscription: EventSubscription): AsyncIterable<readonly ReceivedEvent[]> {
    const stop = AbortSignal.any([subscription.signal, this.closing.signal]);
    if (stop.aborted) return;
    const group = `${this.context.serviceName}-${subscription.listenerName}`;
    const durable = consumerName(group);
    const batchSize = Math.max(1, subscription.batchSize ?? this.resolved.batchSize);
    const byApi = new Map<string, Set<string>>();
    for (const { apiName, eventName } of subscription.events) byApi.set(apiName, (byApi.get(apiName) ?? new Set()).add(eventName));
    const nc = this.openConnection ?? (await this.connection());
    const js = nc.jetstream();
    const queue: JsMsg[] = [];
    const held = new Set<JsMsg>();
    // Messages to give back to the group when this loop stops (received but not started, or
    // nacked without delay while stopping). NAKed while our pull request is still open on the
    // server, JetStream would redeliver them straight into this closing session, where they would
    // sit until acknowledgement_timeout; so they are NAKed once that request has expired.
    const handBack: HandBack = { messages: [], flushed: false };
    const notifier = new Notifier();
    const sessions: ConsumerMessages[] = [];
    let failure: unknown;
    const { logger } = this.context;
    let keepAlive: NodeJS.Timeout | undefined;
    /** Per API: events the stream dropped before this group got them, as last reported. */
    const dropped = new Map<string, number>();
    try {
      for (const [apiName, events] of byApi) {
        await this.#ensureEventStream(apiName);
        await this.#ensureConsumer(apiName, durable, group, [...events], subscription.since);
        // Before the first delivery: once the consumer moves past a gap, it no longer shows.
        await this.#checkDropped([apiName], durable, group, subscription.listenerName, dropped);
        if (stop.aborted) return;
        let messages: ConsumerMessages;
        try {
          const consumer = await js.consumers.get(eventStreamName(this.resolved, apiName), durable);
          messages = await consumer.consume({
            max_messages: batchSize,
            // Short-lived pull requests: after a stop, the server must not keep delivering to
            // this (closed) session's inbox for long. See the hand-back in `finally` below.
            expires: PULL_EXPIRES_MS,
            callback: (m) => {
              if (stop.aborted) {
                handBack.messages.push(m);
                return;
              }
              queue.push(m);
              held.add(m);
              notifier.notify();
            },
          });
        } catch (error) {
          throw wrapError(`consuming events of API ${apiName} for listener group ${group}`, error);
        }
        sessions.push(messages);
        void this.#watchStatus(messages, group, apiName, (reason) => {
          // The consumer (or its stream) was deleted under us: end with an error, so the runtime
          // starts consuming again, which creates them anew.
          this.#streams.delete(`event:${apiName}`);
          if (!stop.aborted && failure === undefined) {
            failure = new Error(`the JetStream consumer ${durable} of API ${apiName} is gone (${reason})`);
            notifier.notify();
          }
        });
        void messages.closed().then((error) => {
          if (!stop.aborted) {
            failure = error ?? new Error('the consumer stopped');
            notifier.notify();
          }
        });
      }
      // Every consumer exists and is being read: events published from now on reach this group.
      subscription.onReady?.();
      // Keep the events this loop holds from being redelivered elsewhere while they are handled,
      // and about once a minute (at least every third tick) see whether the stream dropped events unread.
      const keepAliveMs = Math.max(100, Math.floor(this.resolved.ackWaitMs / 3));
      const checkEvery = Math.max(3, Math.round(60_000 / keepAliveMs));
      let ticks = 0;
      keepAlive = setInterval(() => {
        if (nc.isClosed()) return;
        if (++ticks % checkEvery === 0) void this.#checkDropped(byApi.keys(), durable, group, subscription.listenerName, dropped);
        try {
          for (const m of held) m.working();
        } catch {
          // The connection is draining or reconnecting; JetStream redelivers if it must.
        }
      }, keepAliveMs);
      keepAlive.unref();

      while (!stop.aborted) {
        if (failure !== undefined) throw wrapError(`consuming events for listener group ${group}`, failure);
        if (queue.length === 0) {
          await notifier.wait(stop);
          continue;
        }
        const batch: ReceivedEvent[] = [];
        while (queue.length > 0 && batch.length < batchSize) {
          const m = queue.shift()!;
          const received = await this.#receive(m, byApi, group, held, stop, handBack);
          if (received) batch.push(received);
        }
        if (batch.length > 0) yield batch;
      }
    } finally {
      if (keepAlive) clearInterval(keepAlive);
      await Promise.allSettled(sessions.map((s) => s.close()));
      // Received but never yielded, or handed back by the runtime: NAK them once the pull
      // requests of this session have expired on the server, so another consumer gets them now
      // rather than after the acknowledgement timeout.
      for (const m of queue.splice(0)) {
        held.delete(m);
        handBack.messages.push(m);
      }
      if (handBack.messages.length > 0) await new Promise((r) => setTimeout(r, PULL_EXPIRES_MS + 250));
      handBack.flushed = true;
      for (const m of handBack.messages.splice(0)) {
        try {
          if (!nc.isClosed()) m.nak();
        } catch {
          // Draining: it comes back after acknowledgement_timeout instead.
        }
      }
      if (stop.aborted) logger.debug(`Listener group ${group} stopped consuming`);
    }
  }

  /**
   * Warns when the stream dropped events (its `max_stream_length` or `stream_max_age` limits)
   * that the group had not been delivered yet: the consumer's last delivered stream sequence is
   * below the stream's first one, so everything between is gone. Counted in stream sequences, so
   * events of the API that this listener does not take count too ("up to"). Skipped until the
   * consumer has delivered something (a new group starts where it starts). Logged once, then
   * again whenever the count grows; never throws.
   */
  async #checkDropped(apiNames: Iterable<string>, durable: string, group: string, listenerName: string, reported: Map<string, number>): Promise<void> {
    try {
      const { jsm } = await this.#jsm();
      for (const apiName of apiNames) {
        const stream = eventStreamName(this.resolved, apiName);
        const [consumer, info] = await Promise.all([jsm.consumers.info(stream, durable), jsm.streams.info(stream)]);
        const delivered = consumer.delivered.stream_seq;
        const gone = delivered > 0 ? info.state.first_seq - 1 - delivered : 0;
        if (gone <= 0) {
          reported.delete(apiName);
          continue;
        }
        const before = reported.get(apiName) ?? 0;
        if (gone <= before) continue;
        reported.set(apiName, gone);
        this.context.logger.warn(
          `Listener ${listenerName} fell behind on stream ${stream}: up to ${gone - before} event(s) were dropped by the stream's limits (max_stream_length, stream_max_age) before group ${group} got them, so this listener never gets them. Run more workers or raise the listener's concurrency, or raise the limits where the events are fired.`,
          { stream, group, droppedUnread: gone },
        );
      }
    } catch (error) {
      this.context.logger.debug(`Checking listener group ${group} for dropped events failed: ${describeError(error)}`);
    }
  }

  async #watchStatus(messages: ConsumerMessages, group: string, apiName: string, onGone: (reason: string) => void): Promise<void> {
    try {
      for await (const s of await messages.status()) {
        if (WORTH_A_WARNING.has(s.type)) {
          this.context.logger.warn(`JetStream consumer of listener group ${group} on API ${apiName}: ${s.type}`, { data: describeError(s.data) });
        }
        if (GONE.has(s.type)) onGone(s.type);
      }
    } catch {
      // The status iterator ends with the consumer.
    }
  }

  /** Turns one JetStream message into a received event, or settles it here (unwanted, malformed, too many deliveries). */
  async #receive(
    m: JsMsg,
    byApi: Map<string, Set<string>>,
    group: string,
    held: Set<JsMsg>,
    stop: AbortSignal,
    handBack: HandBack,
  ): Promise<ReceivedEvent | null> {
    const deliveryCount = m.info.deliveryCount;
    const settleHere = async (what: () => Promise<void>) => {
      held.delete(m);
      await what().catch((error: unknown) => this.context.logger.error(`Listener group ${group}: settling the entry at ${m.info.stream}#${m.seq} failed: ${describeError(error)}`));
    };
    let message: EventMessage;
    try {
      message = decodeEvent(m.data);
      const expected = eventSubject(this.resolved, message.apiName, message.eventName);
      if (expected !== m.subject) {
        throw new LightbusError(ErrorCodes.MESSAGE_MALFORMED, `Malformed event: it names ${message.apiName}.${message.eventName} but was published to ${m.subject}.`);
      }
    } catch (error) {
      this.context.logger.error(`Listener group ${group}: dead-lettering the malformed entry ${m.info.stream}#${m.seq}: ${describeError(error)}`);
      await settleHere(() => this.#deadLetter(m, group, error));
      return null;
    }
    if (!byApi.get(message.apiName)?.has(message.eventName)) {
      await settleHere(async () => m.ack()); // same API, not asked for: acknowledged and skipped
      return null;
    }
    if (deliveryCount > this.resolved.maxDeliveries) {
      const reason = `delivered ${deliveryCount} times without being settled (the limit is ${this.resolved.maxDeliveries}; did its handler crash the process?)`;
      this.context.logger.error(`Listener group ${group}: dead-lettering ${message.apiName}.${message.eventName} (${message.id}): ${reason}`);
      await settleHere(() => this.#deadLetter(m, group, new Error(reason)));
      return null;
    }
    let settled = false;
    const once = async (what: string, action: () => Promise<void>) => {
      if (settled) return;
      settled = true;
      held.delete(m);
      try {
        await action();
      } catch (error) {
        throw wrapError(`${what} of event ${message.apiName}.${message.eventName} (${message.id})`, error, 'It will be redelivered after acknowledgement_timeout.');
      }
    };
    return {
      message,
      position: String(m.seq),
      deliveryCount,
      ack: () =>
        once('acknowledging', async () => {
          if (!this.resolved.ackConfirm) return m.ack();
          if (!(await m.ackAck())) throw new Error('JetStream did not confirm the acknowledgement');
        }),
      nack: ({ delayMs }) =>
        once('retrying', async () => {
          // While the loop stops, a prompt retry waits for the hand-back (see consume()).
          if (stop.aborted && delayMs < PULL_EXPIRES_MS + 250 && !handBack.flushed) handBack.messages.push(m);
          else m.nak(Math.max(0, Math.round(delayMs)));
        }),
      deadLetter: (error) => once('dead-lettering', () => this.#deadLetter(m, group, error)),
    };
  }

  /** Stores the message as received in the API's dead-letter stream, then acknowledges it. */
  async #deadLetter(m: JsMsg, group: string, error: unknown): Promise<void> {
    const tokens = m.subject.split('.');
    const o = this.resolved;
    const prefixTokens = o.subjectPrefix.split('.').length + 1; // {prefix}.event.
    const apiName = tokens.slice(prefixTokens, -1).join('.');
    const eventToken = tokens.at(-1) ?? '_';
    await this.#ensureDeadStream(apiName);
    const h = natsHeaders();
    h.set(DEAD_LETTER_HEADERS.error, oneLine(describeError(error)) || 'unknown error');
    h.set(DEAD_LETTER_HEADERS.attempts, String(m.info.deliveryCount));
    h.set(DEAD_LETTER_HEADERS.listener, oneLine(group, 500));
    h.set(DEAD_LETTER_HEADERS.stream, m.info.stream);
    h.set(DEAD_LETTER_HEADERS.sequence, String(m.seq));
    h.set(DEAD_LETTER_HEADERS.subject, m.subject);
    const nc = this.openConnection ?? (await this.connection());
    await nc.jetstream().publish(deadSubject(o, apiName, eventToken), m.data, { headers: h, msgID: `${m.info.stream}:${m.seq}:${group}` });
    await m.ackAck();
  }

  /** Reads an API's stream, newest first by default, with optional event, time and count limits. */
  async *history(query: HistoryQuery): AsyncIterable<HistoricalEvent> {
    const { jsm } = await this.#jsm();
    const o = this.resolved;
    const stream = eventStreamName(o, query.apiName);
    let first: number;
    let last: number;
    try {
      const info = await jsm.streams.info(stream);
      first = info.state.first_seq;
      last = info.state.last_seq;
    } catch (error) {
      if (apiErrorCode(error) === ERR_STREAM_NOT_FOUND) return;
      throw wrapError(`reading the stream ${stream}`, error);
    }
    if (last < first || last === 0) return;
    const newestFirst = (query.order ?? 'newest-first') === 'newest-first';
    const subject = query.eventName === undefined ? undefined : eventSubject(o, query.apiName, query.eventName);
    const since = query.since?.getTime();
    const until = query.until?.getTime();
    const limit = query.limit ?? Infinity;
    let count = 0;
    const chunk = 32;
    let next = newestFirst ? last : first;
    while (count < limit && (newestFirst ? next >= first : next <= last)) {
      const seqs: number[] = [];
      for (let i = 0; i < chunk && (newestFirst ? next >= first : next <= last); i++) seqs.push(newestFirst ? next-- : next++);
      const stored = await Promise.all(
        seqs.map((seq) =>
          jsm.streams.getMessage(stream, { seq }).catch((error: unknown) => {
            if (apiErrorCode(error) === ERR_NO_MESSAGE) return null; // deleted or trimmed
            throw wrapError(`reading message ${seq} of ${stream}`, error);
          }),
        ),
      );
      for (const sm of stored) {
        if (!sm) continue;
        const t = sm.time.getTime();
        if (since !== undefined && t < since) {
          if (newestFirst) return; // older from here on
          continue;
        }
        if (until !== undefined && t > until) {
          if (!newestFirst) return;
          continue;
        }
        if (subject !== undefined && sm.subject !== subject) continue;
        const event = this.#decodeStored(sm, stream);
        if (!event) continue;
        yield { message: event, position: String(sm.seq), time: sm.time };
        if (++count >= limit) return;
      }
    }
  }

  #decodeStored(sm: StoredMsg, stream: string): EventMessage | null {
    try {
      return decodeEvent(sm.data);
    } catch (error) {
      this.context.logger.warn(`History of ${stream}: skipped the entry #${sm.seq}: ${describeError(error)}`);
      return null;
    }
  }
}
