/**
 * The types of the bus object: typed clients for known APIs (`bus.auth.checkPassword({...})`),
 * listeners, options. @module
 */
import type { Static, TProperties, TSchema } from '@sinclair/typebox';
import type { AnyApi, CallParams, EventDefinition, HandlerParams, RpcDefinition } from './api.js';
import type { StartPosition } from './transports/types.js';

/** Options of one RPC call. */
export interface CallOptions {
  /** Seconds to wait for the result (overrides the config's `rpc_timeout`). */
  timeout?: number;
  /** Aborting stops waiting with an `LB_ABORTED` error. */
  signal?: AbortSignal;
}

/** Options of firing an event. */
export interface FireOptions {
  /** Seconds the broker has to accept the event. */
  timeout?: number;
}

/** What a listener's handler gets besides the parameters. */
export interface EventContext {
  /** The event message id. */
  id: string;
  /** The API name. */
  apiName: string;
  /** The event's wire name. */
  eventName: string;
  /** The API version the sender declared. */
  version: number;
  /** The broker's position of this event (stream id, sequence). */
  position: string;
  /** 1 on the first delivery; higher on redeliveries (handlers must be idempotent). */
  deliveryCount: number;
  /** The listener's name. */
  listenerName: string;
}

/** Where a new listener group starts: `'new'` (default), `'all'`, a `Date`, or a broker position. */
export type ListenSince = StartPosition | Date;

/** Options of `listen()`. */
export interface ListenOptions {
  /**
   * Names the listener. Processes of one service with the same listener name share the events
   * (the group is `{service}-{listenerName}`); keep it stable so a restart resumes where it stopped.
   */
  listenerName: string;
  /** Where the group starts when it is first created. Default `'new'`. */
  since?: ListenSince;
  /** Handlers run at once in this process. Default: the API's `event_listener_concurrency` (1). */
  concurrency?: number;
  /** Deliveries before the event is dead-lettered. Default: the API's `max_deliveries` (5). */
  maxDeliveries?: number;
  /** Events read per batch. Default: the event transport's own (10 for memory; redis `batch_size`). */
  batchSize?: number;
}

/** A running (or registered) listener. */
export interface Listener {
  /** The listener name. */
  readonly listenerName: string;
  /** Stops this listener; unsettled events go back to the group. */
  stop(): Promise<void>;
}

/** A listener's handler. It may be async; the event is acknowledged after it resolves. */
export type EventHandler<P> = (params: P, event: EventContext) => unknown;

declare const EVENT_PARAMS: unique symbol;

/** Typed access to one event: `bus.auth.userRegistered`. */
export interface EventClient<P extends TProperties> {
  /** Fires the event. Only the process that registered the API may. */
  fire(...args: {} extends CallParams<P> ? [params?: CallParams<P>, options?: FireOptions] : [params: CallParams<P>, options?: FireOptions]): Promise<void>;
  /** Registers a listener; it runs while the bus is started (`lightbus run`, or `bus.start()`). */
  listen(handler: EventHandler<HandlerParams<P>>, options: ListenOptions): Listener;
  /** Type-level only: the handler's parameter type. */
  readonly [EVENT_PARAMS]?: HandlerParams<P>;
}

/** The parameter type of an {@link EventClient}. */
export type EventClientParams<E> = E extends EventClient<infer P> ? HandlerParams<P> : Record<string, unknown>;

/** Typed access to one RPC: `bus.auth.checkPassword({...})`. */
export type RpcClient<P extends TProperties, R extends TSchema> = (
  ...args: {} extends CallParams<P> ? [params?: CallParams<P>, options?: CallOptions] : [params: CallParams<P>, options?: CallOptions]
) => Promise<Static<R>>;

/** Typed client of one API. */
export type ApiClient<A extends AnyApi> = {
  readonly [K in keyof A['rpcs']]: A['rpcs'][K] extends RpcDefinition<infer P, infer R> ? RpcClient<P, R> : never;
} & {
  readonly [K in keyof A['events']]: A['events'][K] extends EventDefinition<infer P> ? EventClient<P> : never;
};

/** What a handler of RPC calls gets besides the parameters. */
export interface RpcContext {
  /** The call's message id. */
  id: string;
  /** The API name. */
  apiName: string;
  /** The RPC's wire name. */
  procedureName: string;
  /** Absolute deadline (ms since epoch) after which the caller no longer waits, if known. */
  deadline: number | undefined;
}

/** The object that serves an API's RPCs: one method per RPC member. */
export type ApiImplementation<A extends AnyApi> = {
  [K in keyof A['rpcs']]: A['rpcs'][K] extends RpcDefinition<infer P, infer R>
    ? (params: HandlerParams<P>, context: RpcContext) => Static<R> | Promise<Static<R>>
    : never;
};

type Nest<Path extends string, V> = Path extends `${infer Head}.${infer Tail}`
  ? { readonly [K in Head]: Nest<Tail, V> }
  : { readonly [K in Path]: V };

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;

/** Nested typed clients for a list of API definitions (`support.case` → `bus.support.case`). */
export type ApiTree<Apis extends readonly AnyApi[]> = Apis extends readonly []
  ? unknown
  : UnionToIntersection<{ [I in keyof Apis]: Apis[I] extends AnyApi ? Nest<Apis[I]['name'], ApiClient<Apis[I]>> : never }[number]>;

/** Untyped access to an API by name, for APIs known only from the bus. */
export interface UntypedApiClient {
  /** The API name. */
  readonly name: string;
  /** Calls an RPC by wire (or member) name. */
  call(procedure: string, params?: Record<string, unknown>, options?: CallOptions): Promise<unknown>;
  /** Fires an event by name. Only the process that registered the API may. */
  fire(event: string, params?: Record<string, unknown>, options?: FireOptions): Promise<void>;
  /** Listens to one or more events of this API. */
  listen(event: string | readonly string[], handler: EventHandler<Record<string, unknown>>, options: ListenOptions): Listener;
}

/** Names one event for `bus.listen([...])`: a typed event client, or `{ api, event }`. */
export type EventRef = EventClient<TProperties> | { api: string; event: string };
