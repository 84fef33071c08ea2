/**
 * In-memory transports for all four roles: the reference implementation of the transport
 * interfaces and the embedded default when no broker is configured. They keep the semantics a
 * broker has (listener groups, at-least-once delivery acknowledged after the handler, redelivery,
 * a delivery count, dead letters, RPC deadlines, result and schema TTLs), inside one process.
 *
 * Transports built with the same broker name share state; tests should use their own name.
 *
 * @module
 */
import { ErrorCodes, LightbusError, TimeoutError, describeError } from '../errors.js';
import type { EventMessage, ResultMessage, RpcMessage } from '../messages.js';
import type { ApiSchema } from '../schema.js';
import { Notifier, sleep } from '../internal/async.js';
import {
  TRANSPORT_SPECIFICATION_VERSION,
  type EventCapabilities,
  type EventSubscription,
  type EventTransport,
  type HistoricalEvent,
  type HistoryQuery,
  type PendingResult,
  type ReceivedEvent,
  type ResultTransport,
  type RpcTransport,
  type SchemaTransport,
  type TransportContext,
  type TransportPlugin,
} from './types.js';

/** Options of the memory transports (config key `memory`). */
export interface MemoryTransportOptions {
  /** Transports with the same broker name share queues and streams. Default `default`. */
  broker?: string;
  /** Seconds an unacknowledged event stays with its consumer before another may take it. Default 60. */
  acknowledgement_timeout?: number;
  /** Seconds an unread RPC result is kept. Default 60. */
  result_ttl?: number;
  /**
   * Events kept per API stream, about: the oldest are trimmed once the stream is 1% longer (as
   * Redis's `MAXLEN ~`). Default 100000; `null` keeps all.
   */
  max_stream_length?: number | null;
}

/** One dead-lettered event, as the memory transport stores it. */
export interface MemoryDeadLetter {
  /** The event. */
  message: EventMessage;
  /** The listener group it failed in. */
  group: string;
  /** The error it failed with, as text. */
  error: string;
  /** How many deliveries were made. */
  attempts: number;
}

interface StreamEntry {
  seq: number;
  time: number;
  message: EventMessage;
}

interface PendingEntry {
  entry: StreamEntry;
  deliveries: number;
  consumer: string;
  deliveredAt: number;
  /** When set, the entry may be handed out again from this time on. */
  availableAt: number | undefined;
}

interface Group {
  cursor: number;
  pending: Map<number, PendingEntry>;
}

interface Stream {
  entries: StreamEntry[];
  nextSeq: number;
  groups: Map<string, Group>;
  notifier: Notifier;
}

/** The shared state behind memory transports of one broker name. */
export class MemoryBroker {
  /** RPC queues by API name. */
  readonly rpcQueues = new Map<string, RpcMessage[]>();
  /** Wakes RPC consumers. */
  readonly rpcNotifier = new Notifier();
  /** Results waiting to be read, by return path. */
  readonly results = new Map<string, { result: ResultMessage; expiresAt: number }>();
  /** Callers waiting for a result, by return path. */
  readonly resultWaiters = new Map<string, (result: ResultMessage) => void>();
  /** Event streams by API name. */
  readonly streams = new Map<string, Stream>();
  /** Dead-lettered events. */
  readonly deadLetters: MemoryDeadLetter[] = [];
  /** Published schemas. */
  readonly schemas = new Map<string, { schema: ApiSchema; expiresAt: number }>();

  /** The stream of one API, created on first use. */
  stream(apiName: string): Stream {
    let stream = this.streams.get(apiName);
    if (!stream) {
      stream = { entries: [], nextSeq: 1, groups: new Map(), notifier: new Notifier() };
      this.streams.set(apiName, stream);
    }
    return stream;
  }
}

const brokers = new Map<string, MemoryBroker>();

/** The broker of that name, created on first use. */
export function getMemoryBroker(name = 'default'): MemoryBroker {
  let broker = brokers.get(name);
  if (!broker) {
    broker = new MemoryBroker();
    brokers.set(name, broker);
  }
  return broker;
}

/** Forgets a named broker and all it holds (for tests). */
export function deleteMemoryBroker(name: string): void {
  brokers.delete(name);
}

const RETURN_PATH_SCHEME = 'memory';

function closedError(what: string): LightbusError {
  return new LightbusError(ErrorCodes.CLOSED, `The memory ${what} transport is closed. Create a new bus to send again.`);
}

/** RPC over an in-process queue per API. */
export class MemoryRpcTransport implements RpcTransport {
  /** Declared capabilities. */
  readonly capabilities = { deadlines: true };
  readonly #broker: MemoryBroker;
  #closed = false;

  /** @param options see {@link MemoryTransportOptions} */
  constructor(options: MemoryTransportOptions = {}) {
    this.#broker = getMemoryBroker(options.broker);
  }

  /** Queues one call; it expires at its deadline (or after `timeoutMs`). */
  async call(message: RpcMessage, options: { timeoutMs: number }): Promise<void> {
    if (this.#closed) throw closedError('rpc');
    const queue = this.#broker.rpcQueues.get(message.apiName) ?? [];
    queue.push({ ...message, deadline: message.deadline ?? Date.now() + options.timeoutMs });
    this.#broker.rpcQueues.set(message.apiName, queue);
    this.#broker.rpcNotifier.notify();
  }

  /** Yields unexpired calls to the given APIs until the signal aborts. */
  async *consume(apiNames: readonly string[], options: { signal: AbortSignal }): AsyncIterable<RpcMessage> {
    const { signal } = options;
    while (!signal.aborted && !this.#closed) {
      let found: RpcMessage | undefined;
      for (const api of apiNames) {
        const queue = this.#broker.rpcQueues.get(api);
        while (queue && queue.length > 0) {
          const next = queue.shift()!;
          if (next.deadline !== undefined && next.deadline <= Date.now()) continue; // expired: drop silently
          found = next;
          break;
        }
        if (found) break;
      }
      if (found) {
        yield found;
        continue;
      }
      await this.#broker.rpcNotifier.wait(signal, 1000);
    }
  }

  /** Stops consuming. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#broker.rpcNotifier.notify();
  }
}

/** Results through an in-process map keyed by return path (`memory://{broker}/{id}`). */
export class MemoryResultTransport implements ResultTransport {
  /** Declared capabilities. */
  readonly capabilities = { schemes: [RETURN_PATH_SCHEME] };
  readonly #broker: MemoryBroker;
  readonly #brokerName: string;
  readonly #ttlMs: number;

  /** @param options see {@link MemoryTransportOptions} */
  constructor(options: MemoryTransportOptions = {}) {
    this.#brokerName = options.broker ?? 'default';
    this.#broker = getMemoryBroker(this.#brokerName);
    this.#ttlMs = (options.result_ttl ?? 60) * 1000;
  }

  /** Builds the return path and readies the wait. */
  async prepare(message: Pick<RpcMessage, 'id'>): Promise<PendingResult> {
    const returnPath = `${RETURN_PATH_SCHEME}://${encodeURIComponent(this.#brokerName)}/${encodeURIComponent(message.id)}`;
    const broker = this.#broker;
    return {
      returnPath,
      wait: ({ timeoutMs, signal }) =>
        new Promise<ResultMessage>((resolve, reject) => {
          const stored = broker.results.get(returnPath);
          if (stored) {
            broker.results.delete(returnPath);
            resolve(stored.result);
            return;
          }
          const cleanup = () => {
            clearTimeout(timer);
            broker.resultWaiters.delete(returnPath);
            signal?.removeEventListener('abort', onAbort);
          };
          const onAbort = () => {
            cleanup();
            reject(new LightbusError(ErrorCodes.ABORTED, `Waiting for the result of RPC ${message.id} was aborted.`));
          };
          const timer = setTimeout(() => {
            cleanup();
            reject(new TimeoutError(`No result for RPC ${message.id} within ${timeoutMs} ms.`));
          }, timeoutMs);
          broker.resultWaiters.set(returnPath, (result) => {
            cleanup();
            resolve(result);
          });
          signal?.addEventListener('abort', onAbort, { once: true });
        }),
      cancel: async () => {
        broker.resultWaiters.delete(returnPath);
        broker.results.delete(returnPath);
      },
    };
  }

  /** Hands the result to the waiting caller, or keeps it for `result_ttl`. */
  async send(returnPath: string, result: ResultMessage): Promise<void> {
    const target = returnPath.startsWith(`${RETURN_PATH_SCHEME}://`)
      ? getMemoryBroker(decodeURIComponent(returnPath.slice(RETURN_PATH_SCHEME.length + 3).split('/')[0] ?? 'default'))
      : undefined;
    if (!target) {
      throw new LightbusError(ErrorCodes.RETURN_PATH_UNSUPPORTED, `The memory result transport cannot write to ${returnPath}.`);
    }
    const waiter = target.resultWaiters.get(returnPath);
    if (waiter) waiter(result);
    else {
      const now = Date.now();
      for (const [key, value] of target.results) if (value.expiresAt < now) target.results.delete(key);
      target.results.set(returnPath, { result, expiresAt: now + this.#ttlMs });
    }
  }

  /** Nothing to release. */
  async close(): Promise<void> {}
}

/** Events through in-process streams with listener groups. */
export class MemoryEventTransport implements EventTransport {
  /** Declared capabilities. */
  readonly capabilities: EventCapabilities = {
    consumerGroups: true,
    history: true,
    replay: true,
    deadLetter: true,
    redelivery: true,
    durable: false,
  };
  readonly #broker: MemoryBroker;
  readonly #ackTimeoutMs: number;
  readonly #maxLength: number | null;
  readonly #context: TransportContext;
  readonly #closing = new AbortController();

  /**
   * @param options see {@link MemoryTransportOptions}
   * @param context service and process names
   */
  constructor(options: MemoryTransportOptions, context: TransportContext) {
    this.#broker = getMemoryBroker(options.broker);
    this.#ackTimeoutMs = (options.acknowledgement_timeout ?? 60) * 1000;
    this.#maxLength = options.max_stream_length === undefined ? 100_000 : options.max_stream_length;
    this.#context = context;
  }

  /** Appends the event to its API's stream. */
  async send(message: EventMessage): Promise<void> {
    if (this.#closing.signal.aborted) throw closedError('event');
    const stream = this.#broker.stream(message.apiName);
    stream.entries.push({ seq: stream.nextSeq++, time: Date.now(), message: structuredClone(message) });
    // Trimmed in steps of 1% of the maximum, as Redis's `MAXLEN ~` trims whole nodes: removing
    // the oldest entry on every send would move the whole array each time.
    if (this.#maxLength !== null && stream.entries.length >= this.#maxLength + Math.ceil(this.#maxLength / 100)) {
      stream.entries.splice(0, stream.entries.length - this.#maxLength);
    }
    stream.notifier.notify();
  }

  /** Yields batches for one listener group. */
  async *consume(subscription: EventSubscription): AsyncIterable<readonly ReceivedEvent[]> {
    const signal = AbortSignal.any([subscription.signal, this.#closing.signal]);
    const group = `${this.#context.serviceName}-${subscription.listenerName}`;
    const consumer = this.#context.processName;
    const batchSize = Math.max(1, subscription.batchSize ?? 10);
    const apis = [...new Set(subscription.events.map((e) => e.apiName))];
    const wanted = new Set(subscription.events.map((e) => `${e.apiName}\u0000${e.eventName}`));
    const streams = apis.map((api) => {
      const stream = this.#broker.stream(api);
      let g = stream.groups.get(group);
      if (!g) {
        g = { cursor: startCursor(stream, subscription.since), pending: new Map() };
        stream.groups.set(group, g);
      }
      return { stream, group: g };
    });
    subscription.onReady?.();
    try {
      while (!signal.aborted) {
        const batch: ReceivedEvent[] = [];
        let nextWake = Infinity;
        const now = Date.now();
        for (const { stream, group: g } of streams) {
          // 1. Pending entries that may be delivered again (nacked and due, or abandoned).
          for (const p of g.pending.values()) {
            if (batch.length >= batchSize) break;
            const dueAt = p.availableAt ?? p.deliveredAt + this.#ackTimeoutMs;
            if (dueAt <= now) {
              p.deliveries++;
              p.consumer = consumer;
              p.deliveredAt = now;
              p.availableAt = undefined;
              batch.push(this.#received(stream, g, p, group));
            } else nextWake = Math.min(nextWake, dueAt);
          }
          // 2. New entries (found by binary search: a scan from the start made reading a long
          // stream quadratic).
          for (let at = firstAtOrAfter(stream.entries, g.cursor); batch.length < batchSize && at < stream.entries.length; at++) {
            const entry = stream.entries[at]!;
            g.cursor = entry.seq + 1;
            if (!wanted.has(`${entry.message.apiName}\u0000${entry.message.eventName}`)) continue; // not asked for: skip
            const p: PendingEntry = { entry, deliveries: 1, consumer, deliveredAt: now, availableAt: undefined };
            g.pending.set(entry.seq, p);
            batch.push(this.#received(stream, g, p, group));
          }
        }
        if (batch.length > 0) {
          yield batch;
          continue;
        }
        const waits = streams.map(({ stream }) => stream.notifier.wait(signal, nextWake === Infinity ? 1000 : nextWake - Date.now()));
        await Promise.race(waits);
      }
    } finally {
      // Abandoned (unsettled) entries of this consumer become available to the group at once.
      for (const { group: g } of streams) {
        for (const p of g.pending.values()) if (p.consumer === consumer && p.availableAt === undefined) p.availableAt = Date.now();
      }
      for (const { stream } of streams) stream.notifier.notify();
    }
  }

  #received(stream: Stream, group: Group, pending: PendingEntry, groupName: string): ReceivedEvent {
    const { entry } = pending;
    const settledHere = () => group.pending.get(entry.seq) === pending && pending.consumer === this.#context.processName;
    return {
      message: structuredClone(entry.message),
      position: String(entry.seq),
      deliveryCount: pending.deliveries,
      ack: async () => {
        if (settledHere()) group.pending.delete(entry.seq);
      },
      nack: async ({ delayMs }) => {
        if (!settledHere()) return;
        pending.availableAt = Date.now() + Math.max(0, delayMs);
        stream.notifier.notify();
      },
      deadLetter: async (error) => {
        if (!settledHere()) return;
        this.#broker.deadLetters.push({
          message: structuredClone(entry.message),
          group: groupName,
          error: describeError(error),
          attempts: pending.deliveries,
        });
        group.pending.delete(entry.seq);
      },
    };
  }

  /** Reads the stream of an API, newest first by default. */
  async *history(query: HistoryQuery): AsyncIterable<HistoricalEvent> {
    const stream = this.#broker.streams.get(query.apiName);
    if (!stream) return;
    const entries = stream.entries.filter(
      (e) =>
        (query.eventName === undefined || e.message.eventName === query.eventName) &&
        (query.since === undefined || e.time >= query.since.getTime()) &&
        (query.until === undefined || e.time <= query.until.getTime()),
    );
    if ((query.order ?? 'newest-first') === 'newest-first') entries.reverse();
    let count = 0;
    for (const e of entries) {
      if (query.limit !== undefined && count++ >= query.limit) return;
      yield { message: structuredClone(e.message), position: String(e.seq), time: new Date(e.time) };
    }
  }

  /** Ends every consume loop of this transport; their unsettled events become available again. */
  async close(): Promise<void> {
    this.#closing.abort();
    await sleep(0);
  }
}

/** Index of the first entry whose `seq` is at least `seq` (entries are in ascending `seq` order), or `entries.length`. */
function firstAtOrAfter(entries: readonly StreamEntry[], seq: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]!.seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function startCursor(stream: Stream, since: EventSubscription['since']): number {
  if (since === undefined || since === 'new') return stream.nextSeq;
  if (since === 'all') return 0;
  if ('time' in since) {
    const t = since.time.getTime();
    return stream.entries.find((e) => e.time >= t)?.seq ?? stream.nextSeq;
  }
  const n = Number(since.position);
  return Number.isFinite(n) ? n : stream.nextSeq;
}

/** Schemas in an in-process map with TTLs. */
export class MemorySchemaTransport implements SchemaTransport {
  readonly #broker: MemoryBroker;

  /** @param options see {@link MemoryTransportOptions} */
  constructor(options: MemoryTransportOptions = {}) {
    this.#broker = getMemoryBroker(options.broker);
  }

  /** Stores one API's schema for `ttlSeconds`. */
  async store(apiName: string, schema: ApiSchema, ttlSeconds: number): Promise<void> {
    this.#broker.schemas.set(apiName, { schema: structuredClone(schema), expiresAt: Date.now() + ttlSeconds * 1000 });
  }

  /** Every unexpired schema. */
  async load(): Promise<Record<string, ApiSchema>> {
    const now = Date.now();
    const out: Record<string, ApiSchema> = {};
    for (const [name, { schema, expiresAt }] of this.#broker.schemas) {
      if (expiresAt >= now) out[name] = structuredClone(schema);
    }
    return out;
  }

  /** Nothing to release. */
  async close(): Promise<void> {}
}

/** The `memory` transport plugin: all four roles in process. */
export const memoryTransports: TransportPlugin<MemoryTransportOptions> = {
  specificationVersion: TRANSPORT_SPECIFICATION_VERSION,
  name: 'memory',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      broker: { type: 'string', minLength: 1, description: 'Transports with the same broker name share state.' },
      acknowledgement_timeout: { type: 'number', exclusiveMinimum: 0, description: 'Seconds before an unacknowledged event is redelivered.' },
      result_ttl: { type: 'number', exclusiveMinimum: 0, description: 'Seconds an unread RPC result is kept.' },
      max_stream_length: { type: ['integer', 'null'], minimum: 1, description: 'Events kept per API, about (trimmed in steps of 1%); null keeps all.' },
    },
  },
  createRpcTransport: (options) => new MemoryRpcTransport(options),
  createResultTransport: (options) => new MemoryResultTransport(options),
  createEventTransport: (options, context) => new MemoryEventTransport(options, context),
  createSchemaTransport: (options) => new MemorySchemaTransport(options),
};
