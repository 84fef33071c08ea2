/**
 * The Lightbus error family. Every error the library throws or hands to a callback is a
 * {@link LightbusError} with a stable {@link LightbusError.code}, a `retryable` flag and, where
 * one exists, the underlying `cause`. Client-library errors (ioredis, nats, amqplib) are wrapped,
 * never leaked raw.
 *
 * Use {@link LightbusError.isInstance} rather than `instanceof` when two copies of
 * `@lightbus/core` may be installed side by side: it checks a global symbol, not a prototype.
 *
 * @module
 */

const MARKER = Symbol.for('lightbus.error');

/** Stable error codes. A code never changes meaning; new codes may be added. */
export const ErrorCodes = {
  /** The configuration is malformed (a bad key, a wrong type, an unknown transport). */
  CONFIG_INVALID: 'LB_CONFIG_INVALID',
  /** A configuration file named by a path or `LIGHTBUS_CONFIG` could not be read. */
  CONFIG_NOT_FOUND: 'LB_CONFIG_NOT_FOUND',
  /** A config names a transport that is not installed or does not serve the role. */
  TRANSPORT_UNKNOWN: 'LB_TRANSPORT_UNKNOWN',
  /** An API definition is malformed (bad name, bad member, bad schema). */
  API_DEFINITION_INVALID: 'LB_API_DEFINITION_INVALID',
  /** Parameters or a result did not match the API's JSON Schema. */
  VALIDATION_FAILED: 'LB_VALIDATION_FAILED',
  /** No answer arrived for an RPC before its deadline. */
  RPC_TIMEOUT: 'LB_RPC_TIMEOUT',
  /** The remote RPC handler threw; the error text and trace came back with the result. */
  REMOTE_ERROR: 'LB_REMOTE_ERROR',
  /** This process tried to fire an event or serve an RPC of an API it has not registered. */
  NOT_AUTHORITATIVE: 'LB_NOT_AUTHORITATIVE',
  /** An API name is not known to this bus (no definition, no schema on the bus). */
  API_UNKNOWN: 'LB_API_UNKNOWN',
  /** An API is known but has no RPC or event by that name. */
  MEMBER_UNKNOWN: 'LB_MEMBER_UNKNOWN',
  /** A message read from a transport could not be decoded. */
  MESSAGE_MALFORMED: 'LB_MESSAGE_MALFORMED',
  /** A message is larger than the configured limit. */
  MESSAGE_TOO_LARGE: 'LB_MESSAGE_TOO_LARGE',
  /** A broker operation failed (connection lost, command rejected). */
  TRANSPORT_ERROR: 'LB_TRANSPORT_ERROR',
  /** The bus or a transport was used after `close()`. */
  CLOSED: 'LB_CLOSED',
  /** A return path names a result transport this process does not have. */
  RETURN_PATH_UNSUPPORTED: 'LB_RETURN_PATH_UNSUPPORTED',
  /** A listener was registered twice with the same name for the same events. */
  LISTENER_INVALID: 'LB_LISTENER_INVALID',
  /** Graceful shutdown did not finish within its deadline. */
  SHUTDOWN_TIMEOUT: 'LB_SHUTDOWN_TIMEOUT',
  /** The operation was aborted by its caller (an AbortSignal fired). */
  ABORTED: 'LB_ABORTED',
} as const;

/** One of the values of {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Options accepted by every Lightbus error constructor. */
export interface LightbusErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** True when trying the same operation again may succeed. */
  retryable?: boolean;
  /** Machine-readable details (API name, member, ...). Never contains secrets. */
  details?: Record<string, unknown>;
}

/** Base class of every error Lightbus throws. */
export class LightbusError extends Error {
  /** A stable code from {@link ErrorCodes}. */
  readonly code: ErrorCode;
  /** True when trying the same operation again may succeed. */
  readonly retryable: boolean;
  /** Machine-readable details. */
  readonly details: Record<string, unknown>;

  /**
   * @param code a stable code from {@link ErrorCodes}
   * @param message what went wrong and what to do about it
   * @param options cause, retryable flag and details
   */
  constructor(code: ErrorCode, message: string, options: LightbusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details ?? {};
    Object.defineProperty(this, MARKER, { value: true, enumerable: false });
  }

  /**
   * True when `error` is a Lightbus error, even one created by another installed copy of
   * `@lightbus/core`. Prefer this to `instanceof`.
   */
  static isInstance(error: unknown): error is LightbusError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[MARKER] === true;
  }

  /** A plain-object form for structured logs. */
  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, retryable: this.retryable, details: this.details };
  }
}

/** A configuration problem: bad keys, wrong types, an unknown transport, an unreadable file. */
export class ConfigurationError extends LightbusError {
  /**
   * @param message what is wrong and how to fix it
   * @param options cause and details
   */
  constructor(message: string, options: LightbusErrorOptions & { code?: ErrorCode } = {}) {
    super(options.code ?? ErrorCodes.CONFIG_INVALID, message, options);
  }
}

/** One problem found by JSON Schema validation. */
export interface ValidationIssue {
  /** JSON path of the bad value, such as `$.username` or `$.items[2].price`; `$` is the root. */
  path: string;
  /** What was expected, in words. */
  message: string;
}

/** Parameters or a result did not match the schema. */
export class ValidationError extends LightbusError {
  /** Every problem found, each with the JSON path of the value. */
  readonly issues: readonly ValidationIssue[];

  /**
   * @param message summary naming the API and member
   * @param issues each problem with its JSON path
   * @param options details
   */
  constructor(message: string, issues: readonly ValidationIssue[], options: LightbusErrorOptions = {}) {
    super(ErrorCodes.VALIDATION_FAILED, message, options);
    this.issues = issues;
  }
}

/** An operation did not finish before its deadline. */
export class TimeoutError extends LightbusError {
  /**
   * @param message what timed out and what to check
   * @param options details
   */
  constructor(message: string, options: LightbusErrorOptions & { code?: ErrorCode } = {}) {
    super(options.code ?? ErrorCodes.RPC_TIMEOUT, message, { retryable: true, ...options });
  }
}

/** A broker operation failed. Wraps the client library's error as `cause`. */
export class TransportError extends LightbusError {
  /**
   * @param message what failed, naming the broker and the operation
   * @param options the client library's error as `cause`, retryable flag
   */
  constructor(message: string, options: LightbusErrorOptions & { code?: ErrorCode } = {}) {
    super(options.code ?? ErrorCodes.TRANSPORT_ERROR, message, { retryable: true, ...options });
  }
}

/** The remote handler of an RPC threw. */
export class RemoteError extends LightbusError {
  /** The remote side's printable form of the error, e.g. `ValueError('boom')`. */
  readonly remoteError: string;
  /** The remote stack trace, when it sent one. */
  readonly remoteTrace: string | undefined;
  /**
   * The Lightbus error code of the remote failure, when the server is a Lightbus for TypeScript
   * worker that failed with one (e.g. `LB_VALIDATION_FAILED` when the worker rejected the
   * arguments); `undefined` for an ordinary exception or a Python server.
   */
  readonly remoteCode: ErrorCode | undefined;

  /**
   * @param message summary naming the RPC
   * @param remoteError the remote printable error
   * @param remoteTrace the remote stack trace
   * @param options details
   */
  constructor(message: string, remoteError: string, remoteTrace: string | undefined, options: LightbusErrorOptions = {}) {
    super(ErrorCodes.REMOTE_ERROR, message, options);
    this.remoteError = remoteError;
    this.remoteTrace = remoteTrace;
    const code = /^\w+\('\[(LB_[A-Z_]+)\] /.exec(remoteError)?.[1];
    this.remoteCode = code !== undefined && (Object.values(ErrorCodes) as string[]).includes(code) ? (code as ErrorCode) : undefined;
  }
}

/** Turns anything thrown into a readable one-line description. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}
