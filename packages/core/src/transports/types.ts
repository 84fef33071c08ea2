/**
 * The four transport interfaces. A transport package (ours or yours) implements any of them and
 * exports a {@link TransportPlugin} that builds them from config options. Core never talks to a
 * broker itself.
 *
 * Roles:
 * - {@link RpcTransport}: carries RPC calls from callers to the worker that serves the API.
 * - {@link ResultTransport}: carries the result back along the caller's return path.
 * - {@link EventTransport}: carries fired events to every listener group, at least once.
 * - {@link SchemaTransport}: shares each API's JSON Schema between processes.
 *
 * @module
 */
import type { EventMessage, ResultMessage, RpcMessage } from '../messages.js';
import type { Logger } from '../logger.js';
import type { ApiSchema } from '../schema.js';

/** The version of these interfaces. A plugin declares the version it implements. */
export const TRANSPORT_SPECIFICATION_VERSION = 1 as const;

/** What every transport gets when it is built. */
export interface TransportContext {
  /** The service name of the process (stable across restarts). */
  serviceName: string;
  /** The process name (unique among the service's running processes). */
  processName: string;
  /** Where the transport logs. */
  logger: Logger;
}

/** Common to all four roles. */
export interface Transport {
  /** Opens connections. Called once before first use; optional for lazy transports. */
  open?(): Promise<void>;
  /** Releases every connection and timer. Idempotent. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// RPC

/** What an RPC transport can do. */
export interface RpcCapabilities {
  /** The transport enforces the call's deadline itself (e.g. an expiry key). */
  deadlines: boolean;
}

/** Options of {@link RpcTransport.call}. */
export interface RpcCallOptions {
  /** How long the caller will wait, in milliseconds (the call's time to live). */
  timeoutMs: number;
}

/** Options of {@link RpcTransport.consume}. */
export interface RpcConsumeOptions {
  /** Aborting ends the iteration promptly; calls not yet yielded stay with the broker. */
  signal: AbortSignal;
}

/** Carries RPC calls from callers to the serving worker. Delivery is at most once. */
export interface RpcTransport extends Transport {
  /** Declared capabilities. */
  readonly capabilities: RpcCapabilities;
  /** Sends one call. Resolves once the broker has it. */
  call(message: RpcMessage, options: RpcCallOptions): Promise<void>;
  /**
   * Yields calls to any of the given APIs, each at most once, until `signal` aborts. Calls whose
   * deadline has passed are dropped by the transport (or by the worker when it sees `deadline`).
   * A malformed call is logged and skipped; it never ends the iteration.
   */
  consume(apiNames: readonly string[], options: RpcConsumeOptions): AsyncIterable<RpcMessage>;
}

// ---------------------------------------------------------------------------------------------
// Results

/** A caller's handle on a result that has not arrived yet. */
export interface PendingResult {
  /** The URI to put into {@link RpcMessage.returnPath}. */
  readonly returnPath: string;
  /**
   * Waits for the result. Rejects with a {@link TimeoutError} (code `LB_RPC_TIMEOUT`) when
   * nothing arrives within `timeoutMs`.
   */
  wait(options: { timeoutMs: number; signal?: AbortSignal }): Promise<ResultMessage>;
  /** Gives up waiting and frees whatever was set up for this result. Idempotent. */
  cancel(): Promise<void>;
}

/** What a result transport can do. */
export interface ResultCapabilities {
  /** The URI schemes of the return paths this transport can write to (e.g. `redis+key`). */
  schemes: readonly string[];
}

/** Carries RPC results back to callers along return paths. */
export interface ResultTransport extends Transport {
  /** Declared capabilities. */
  readonly capabilities: ResultCapabilities;
  /**
   * Called by the caller before it sends the call: sets up whatever receiving needs (a
   * subscription, a key name) and returns the return path to send along.
   */
  prepare(message: Pick<RpcMessage, 'id' | 'apiName' | 'procedureName'>): Promise<PendingResult>;
  /**
   * Called by the worker: delivers `result` to `returnPath`. `ttlMs` is how long an unread
   * result may be kept.
   */
  send(returnPath: string, result: ResultMessage, options: { rpc: RpcMessage }): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Events

/** What an event transport can do. The conformance suite skips what is not claimed. */
export interface EventCapabilities {
  /** Listener groups (`{service}-{listener}`): processes of one service share the work. */
  consumerGroups: boolean;
  /** Events stay on the broker after delivery and {@link EventTransport.history} can read them. */
  history: boolean;
  /** A new listener can start from the beginning or from a time/position (`since`). */
  replay: boolean;
  /** {@link ReceivedEvent.deadLetter} stores the event somewhere it can be inspected and replayed. */
  deadLetter: boolean;
  /** Unacknowledged events are redelivered after a consumer dies. */
  redelivery: boolean;
  /** Events survive a restart of the broker (when the broker persists). */
  durable: boolean;
}

/** One event type a listener wants. */
export interface EventSelector {
  /** API name. */
  apiName: string;
  /** Event wire name. */
  eventName: string;
}

/** Where a new listener group starts reading. */
export type StartPosition =
  | 'new'
  | 'all'
  | { time: Date }
  | { position: string };

/** What {@link EventTransport.consume} is asked for. */
export interface EventSubscription {
  /** The listener's name; with the service name it forms the group (`{service}-{listener}`). */
  listenerName: string;
  /** The events wanted. Events of the same API that are not wanted are acknowledged and skipped. */
  events: readonly EventSelector[];
  /** Where a group that does not exist yet starts. Default `'new'`. */
  since?: StartPosition;
  /** How many events one read may return. */
  batchSize?: number;
  /** Aborting ends the iteration; unacknowledged events stay pending for redelivery. */
  signal: AbortSignal;
  /**
   * Called by the transport once the subscription is in place on the broker (its group, queue
   * or consumer exists and reading has begun): every event sent from then on reaches this
   * listener. `bus.start()` waits for it, so an event fired right after `start()` resolves is
   * never missed by a group that was just created. Call it once; before the first batch.
   */
  onReady?: () => void;
}

/** An event handed to a listener, with the means to settle it. */
export interface ReceivedEvent {
  /** The event. */
  readonly message: EventMessage;
  /** The broker's position of this entry (Redis stream id, JetStream sequence, ...). */
  readonly position: string;
  /** 1 on first delivery; counts redeliveries where the broker tracks them. */
  readonly deliveryCount: number;
  /** Marks the event handled. Transports may batch acknowledgements. */
  ack(): Promise<void>;
  /**
   * The handler failed: deliver it again, no sooner than `delayMs` from now. The event stays
   * owned by the group (never lost).
   */
  nack(options: { delayMs: number; error: unknown }): Promise<void>;
  /**
   * Gives up on the event: stores it with `error` in the dead-letter place (when the transport
   * has one) and acknowledges it.
   */
  deadLetter(error: unknown): Promise<void>;
}

/** Options of {@link EventTransport.history}. */
export interface HistoryQuery {
  /** API name. */
  apiName: string;
  /** Only this event (wire name); all events of the API when left out. */
  eventName?: string;
  /** Newest first (the default) or oldest first. */
  order?: 'newest-first' | 'oldest-first';
  /** At most this many events. */
  limit?: number;
  /** Only events at or after this time. */
  since?: Date;
  /** Only events at or before this time. */
  until?: Date;
}

/** An event read from history, with its broker position. */
export interface HistoricalEvent {
  /** The event. */
  message: EventMessage;
  /** The broker position (stream id, sequence). */
  position: string;
  /** When the broker took it, when known. */
  time?: Date;
}

/** Options of {@link EventTransport.send}. */
export interface EventSendOptions {
  /** Time budget for the broker to accept the event, in milliseconds. */
  timeoutMs?: number;
}

/** Carries events to every listener group, at least once. */
export interface EventTransport extends Transport {
  /** Declared capabilities. */
  readonly capabilities: EventCapabilities;
  /** Puts one event on the bus. Resolves when the broker has accepted it. */
  send(message: EventMessage, options?: EventSendOptions): Promise<void>;
  /**
   * Yields batches of events for one listener group until `subscription.signal` aborts. Every
   * yielded event must be settled with ack, nack or deadLetter; unsettled events are redelivered.
   * A malformed entry is dead-lettered or skipped with a logged reason; it never ends the
   * iteration.
   */
  consume(subscription: EventSubscription): AsyncIterable<readonly ReceivedEvent[]>;
  /** Reads past events (only when `capabilities.history`). */
  history?(query: HistoryQuery): AsyncIterable<HistoricalEvent>;
}

// ---------------------------------------------------------------------------------------------
// Schema

/** Shares API schemas between processes. */
export interface SchemaTransport extends Transport {
  /** Publishes (or refreshes) one API's schema for `ttlSeconds`. */
  store(apiName: string, schema: ApiSchema, ttlSeconds: number): Promise<void>;
  /** Loads every API schema currently published. */
  load(): Promise<Record<string, ApiSchema>>;
}

// ---------------------------------------------------------------------------------------------
// Plugins

/** The four roles a transport can serve. */
export type TransportRole = 'rpc' | 'result' | 'event' | 'schema';

/** The transport type for each role. */
export interface TransportByRole {
  rpc: RpcTransport;
  result: ResultTransport;
  event: EventTransport;
  schema: SchemaTransport;
}

/**
 * A transport package's entry point: builds transports from config options. The config key
 * (`event_transport: { redis: {...} }`) is the plugin's {@link TransportPlugin.name}.
 */
export interface TransportPlugin<Options extends object = Record<string, unknown>> {
  /** The interface version implemented; must be {@link TRANSPORT_SPECIFICATION_VERSION}. */
  readonly specificationVersion: typeof TRANSPORT_SPECIFICATION_VERSION;
  /** The config key, e.g. `redis`, `nats`, `amqp`, `memory`. */
  readonly name: string;
  /** JSON Schema of the options object (used to check configs and by `dumpconfigschema`). */
  readonly optionsSchema?: Record<string, unknown>;
  /** Builds an RPC transport. Leave out when the plugin does not serve the role. */
  createRpcTransport?(options: Options, context: TransportContext): RpcTransport;
  /** Builds a result transport. */
  createResultTransport?(options: Options, context: TransportContext): ResultTransport;
  /** Builds an event transport. */
  createEventTransport?(options: Options, context: TransportContext): EventTransport;
  /** Builds a schema transport. */
  createSchemaTransport?(options: Options, context: TransportContext): SchemaTransport;
}
