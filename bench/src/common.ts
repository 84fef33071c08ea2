/**
 * What every target shares: the scenario names, the message shapes, the interfaces a target
 * implements on each side, and small helpers (clocks, percentiles, medians).
 */

/** The transports a target runs over. */
export type TransportName = 'memory' | 'redis' | 'nats' | 'amqp';

/**
 * Who does the work: Lightbus (`bus`), the broker's client library by hand (`raw`), the client
 * library speaking Lightbus's own wire format by hand (`raw-wire`: what the protocol itself
 * costs), or Moleculer.
 */
export type TargetKind = 'bus' | 'raw' | 'raw-wire' | 'moleculer';

/** The scenarios; `soak` is the bulk-events scenario with a large count (only with `--events`). */
export type ScenarioName = 'events-bulk' | 'events-serial' | 'rpc-serial' | 'rpc-concurrent' | 'soak';

/** Default scenarios of a run, in order. */
export const SCENARIOS: readonly ScenarioName[] = ['events-bulk', 'events-serial', 'rpc-serial', 'rpc-concurrent'];

/** The event every target sends: a sequence number, the send time and a filler (about 200 bytes as JSON). */
export interface BenchEvent {
  /** Sequence number. */
  n: number;
  /** `process.hrtime` (ns, as a number) when it was fired: CLOCK_MONOTONIC, comparable across processes. */
  t: number;
  /** Filler. */
  data: string;
}

/** The parameters of the echo RPC; it returns `n`. */
export interface BenchCall {
  /** Sequence number, returned by the server. */
  n: number;
  /** Filler. */
  data: string;
}

/** Names and addresses of one run: everything a target creates on a broker carries `id`. */
export interface RunContext {
  /** Unique id of this run: letters and digits, safe in stream, subject and queue names. */
  id: string;
  /** The scenario being run. */
  scenario: ScenarioName;
  /** Redis URL (database 9). */
  redisUrl: string;
  /** NATS server. */
  natsUrl: string;
  /** RabbitMQ URL. */
  amqpUrl: string;
  /** Handlers a bus listener runs at once (`concurrency` of listen()). */
  busListenerConcurrency: number;
}

/** The worker side of a target: serves the echo RPC and handles events. */
export interface WorkerSide {
  /** Connects, declares what it needs and starts consuming; resolves when it is ready for load. */
  start(onEvent: (event: BenchEvent) => void): Promise<void>;
  /** Stops consuming and disconnects. */
  close(): Promise<void>;
}

/** The client side of a target: fires events and calls the echo RPC. */
export interface ClientSide {
  /** Connects; resolves when the first call or event may be sent. */
  start(): Promise<void>;
  /** Fires a batch of events (at most about 100); resolves when the broker has taken them all. */
  fireBatch(events: BenchEvent[]): Promise<void>;
  /** Calls the echo RPC once. */
  call(params: BenchCall): Promise<number>;
  /** Disconnects. */
  close(): Promise<void>;
}

/** One thing to measure: a transport driven by Lightbus, by the raw client, or by Moleculer. */
export interface Target {
  /** `transport-kind`, e.g. `redis-bus`. */
  id: string;
  /** The transport. */
  transport: TransportName;
  /** Who drives it. */
  kind: TargetKind;
  /** True when both sides must share one process (the memory transport). */
  inProcess?: boolean;
  /** Builds the worker side. */
  worker(ctx: RunContext): WorkerSide;
  /** Builds the client side. */
  client(ctx: RunContext): ClientSide;
  /** Deletes what the run left on the broker. */
  cleanup?(ctx: RunContext): Promise<void>;
}

/** CLOCK_MONOTONIC in nanoseconds as a number: shared by every process on the machine. */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/** A filler string of `length` characters. */
export function filler(length: number): string {
  return 'x'.repeat(length);
}

/** The event with sequence number `n`, stamped now. */
export function makeEvent(n: number, data: string): BenchEvent {
  return { n, t: nowNs(), data };
}

/** The value at quantile `q` (0..1) of an ascending array, or 0 when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index]!;
}

/** p50 and p99 in milliseconds of latencies given in nanoseconds. */
export function latencySummary(latenciesNs: number[]): { p50Ms: number; p99Ms: number; samples: number } {
  const sorted = Float64Array.from(latenciesNs).sort();
  const arr = Array.from(sorted);
  return { p50Ms: quantile(arr, 0.5) / 1e6, p99Ms: quantile(arr, 0.99) / 1e6, samples: arr.length };
}

/** The median of some numbers (the lower middle for an even count), or null when none. */
export function median(values: readonly (number | null | undefined)[]): number | null {
  const present = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (present.length === 0) return null;
  return present[Math.floor((present.length - 1) / 2)]!;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The message of an unknown thrown value. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
