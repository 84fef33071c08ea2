/**
 * What the test and a chaos worker process say to each other. The test passes a
 * {@link WorkerConfig} as JSON in `LIGHTBUS_CHAOS_WORKER`; the worker writes one JSON
 * {@link WorkerLine} per line on stdout (a pipe: each write is synchronous on Linux, so a line
 * written before the acknowledgement survives a SIGKILL right after it). Its logs go to stderr
 * as JSON lines.
 *
 * @module
 */

/** How a worker is set up. */
export interface WorkerConfig {
  /** The chaos API's name. */
  apiName: string;
  /** Transport plugin name. */
  transport: 'redis' | 'nats' | 'amqp';
  /** Options of the transport (url, acknowledgement_timeout ...). */
  transportOptions: Record<string, unknown>;
  /** Service name (the listener group is `{service}-{listener}`). */
  serviceName: string;
  /** Process name (the consumer name). */
  processName: string;
  /** Listener name; no listener when left out. */
  listenerName?: string;
  /** Serve the API's RPCs. */
  serveRpcs?: boolean;
  /** Milliseconds each event handler takes. */
  handlerDelayMs?: number;
  /** Listener concurrency. */
  concurrency?: number;
  /** Listener batch size. */
  batchSize?: number;
  /** Deliveries before dead-lettering. */
  maxDeliveries?: number;
  /** First retry delay in seconds. */
  retryDelay?: number;
  /** Events whose handler always throws. */
  poisonSeqs?: number[];
  /** Milliseconds `bus.close()` may take on SIGTERM. Default 10000. */
  stopTimeoutMs?: number;
  /** Extra per-API config (max_message_bytes, validate ...). */
  apiConfig?: Record<string, unknown>;
}

/** One line a worker writes on stdout. */
export type WorkerLine =
  | { t: 'ready'; pid: number }
  /** A handler started (`d`: delivery count). */
  | { t: 'start'; seq: number; d: number }
  /** A handler finished without throwing; the acknowledgement follows. */
  | { t: 'done'; seq: number; d: number }
  /** A handler threw on purpose (poison). */
  | { t: 'fail'; seq: number; d: number }
  /** A handler received something that is not a proper event (should never happen). */
  | { t: 'corrupt'; detail: string }
  /** The prototype check: keys found on Object.prototype that should not be there. */
  | { t: 'proto'; polluted: string[] }
  /** The most handlers seen running at once. */
  | { t: 'concurrency'; max: number }
  /** bus.close() returned (after SIGTERM). */
  | { t: 'closed'; ms: number }
  /** The worker failed to start or crashed. */
  | { t: 'fatal'; error: string };

/** The environment variable carrying the config. */
export const WORKER_ENV = 'LIGHTBUS_CHAOS_WORKER';
