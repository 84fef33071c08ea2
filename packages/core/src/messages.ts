/**
 * The messages that travel between processes. Transports encode these on the wire; the Redis
 * transport in exactly the Python Lightbus format.
 *
 * @module
 */

/** Keyword arguments of an RPC or the parameters of an event, as plain JSON values. */
export type Kwargs = Record<string, unknown>;

/** A request to run a remote procedure. */
export interface RpcMessage {
  /** Unique message id (any non-empty string). */
  id: string;
  /** The API name, e.g. `auth` or `my_company.auth`. */
  apiName: string;
  /** The procedure's wire name, e.g. `check_password`. */
  procedureName: string;
  /** The arguments, already converted to JSON values. */
  kwargs: Kwargs;
  /** Where the result goes: a URI built by the caller's result transport. */
  returnPath: string;
  /**
   * Absolute deadline in milliseconds since the epoch. A server must not run a call whose
   * deadline has passed. Transports carry it as they can (Redis: the `rpc_expiry_key` TTL).
   */
  deadline?: number;
}

/** The outcome of an RPC. */
export interface ResultMessage {
  /** Unique id of this result message. */
  id: string;
  /** The id of the {@link RpcMessage} this answers. */
  rpcMessageId: string;
  /** True when the remote handler threw. */
  error: boolean;
  /** The return value (JSON), or on error a printable form of the error. */
  result: unknown;
  /** The remote stack trace, on error only. */
  trace?: string;
}

/** An event, as fired by the API's authoritative service. */
export interface EventMessage {
  /** Unique message id. */
  id: string;
  /** The API name. */
  apiName: string;
  /** The event's wire name, e.g. `user_registered`. */
  eventName: string;
  /** The API version (a positive integer, default 1). */
  version: number;
  /** The parameters, already converted to JSON values. */
  kwargs: Kwargs;
}

/** Builds a new unique message id. */
export function newMessageId(): string {
  return globalThis.crypto.randomUUID();
}
