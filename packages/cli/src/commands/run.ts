/**
 * `lightbus run`: loads the service's bus module, starts the worker (serve RPCs, run listeners
 * and scheduled tasks), prints a start-up summary, and on SIGINT/SIGTERM stops gracefully.
 *
 * @module
 */
import { formatFatal, CliError } from '../errors.js';
import { startHealthServer, type HealthServer } from '../health.js';
import { obtainBus, type AnyBus, type BusFlags } from '../load-bus.js';
import { formatSummary, type WorkerParts } from '../summary.js';

/** Extra time, past `--shutdown-timeout`, that closing the transports may take before `run` gives up. */
const CLOSE_GRACE_MS = 5000;

/** The parts of the worker `--only` and `--skip` name. */
export const WORKER_PARTS = ['rpcs', 'events', 'tasks'] as const;

/** Flags of `lightbus run`. */
export interface RunFlags extends BusFlags {
  /** `--only rpcs,events,tasks`: run only these parts. */
  only?: string;
  /** `--skip rpcs,events,tasks`: run all but these parts. */
  skip?: string;
  /** `--shutdown-timeout MS`: time in-flight handlers get to finish on shutdown. */
  shutdownTimeout?: number;
  /** `--start-timeout SECONDS`: give up starting after this long (an unreachable broker). */
  startTimeout?: number;
  /** `--health-port N`: serve /healthz and /readyz. */
  healthPort?: number;
  /** `--health-host HOST`: the interface of the health endpoint. */
  healthHost?: string;
}

function parseList(value: string, flag: string): Set<string> {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const item of items) {
    if (!(WORKER_PARTS as readonly string[]).includes(item)) {
      throw new CliError(`${flag} got "${item}", which is not a part of the worker. Use a comma list of: ${WORKER_PARTS.join(', ')}.`, { exitCode: 2 });
    }
  }
  if (items.length === 0) throw new CliError(`${flag} needs a comma list of: ${WORKER_PARTS.join(', ')}.`, { exitCode: 2 });
  return new Set(items);
}

/** Which parts run, from `--only` / `--skip` (comma lists of rpcs, events, tasks). */
export function workerParts(only: string | undefined, skip: string | undefined): WorkerParts {
  if (only !== undefined && skip !== undefined) throw new CliError('Give --only or --skip, not both.', { exitCode: 2 });
  if (only !== undefined) {
    const set = parseList(only, '--only');
    return { rpcs: set.has('rpcs'), events: set.has('events'), tasks: set.has('tasks') };
  }
  const set = skip === undefined ? new Set<string>() : parseList(skip, '--skip');
  return { rpcs: !set.has('rpcs'), events: !set.has('events'), tasks: !set.has('tasks') };
}

function isDebug(flags: BusFlags): boolean {
  return (flags.logLevel ?? process.env['LIGHTBUS_LOG_LEVEL']) === 'debug';
}

function quiet(flags: BusFlags): boolean {
  const level = flags.logLevel ?? process.env['LIGHTBUS_LOG_LEVEL'] ?? 'info';
  return level === 'warn' || level === 'error' || level === 'silent';
}

function jsonLogs(flags: BusFlags): boolean {
  return flags.jsonLogs === true || process.env['LIGHTBUS_LOG_FORMAT'] === 'json';
}

async function closeQuietly(bus: AnyBus, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    bus.close({ timeoutMs }).catch(() => undefined),
    new Promise<void>((resolvePromise) => {
      timer = setTimeout(resolvePromise, timeoutMs + 1000);
    }),
  ]);
  clearTimeout(timer);
}

async function withTimeout<T>(promise: Promise<T>, seconds: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CliError(message)), seconds * 1000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs the worker until SIGINT or SIGTERM, then closes the bus gracefully and resolves with the
 * exit code (0). A second signal exits at once (130 for SIGINT, 143 for SIGTERM). Rejects when
 * the worker cannot start (missing module, bad config, unreachable broker).
 */
export async function runWorker(flags: RunFlags): Promise<number> {
  const parts = workerParts(flags.only, flags.skip);
  const shutdownTimeoutMs = flags.shutdownTimeout ?? 10_000;
  const startTimeout = flags.startTimeout ?? 30;
  const say = (line: string, fields?: Record<string, unknown>) => {
    if (quiet(flags)) return;
    if (jsonLogs(flags)) console.error(JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: line, ...fields }));
    else console.error(`[lightbus] INFO  ${line}`);
  };

  let signalled: NodeJS.Signals | undefined;
  let onShutdown: ((signal: NodeJS.Signals) => void) | undefined;
  const shutdown = new Promise<NodeJS.Signals>((resolvePromise) => {
    onShutdown = resolvePromise;
  });
  let health: HealthServer | undefined;
  const handle = (signal: NodeJS.Signals) => {
    if (signalled !== undefined) {
      console.error(`[lightbus] ${signal} again: exiting at once; unfinished events will be redelivered.`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    signalled = signal;
    health?.setState('stopping');
    say(`${signal} received: stopping gracefully (up to ${shutdownTimeoutMs} ms for handlers in flight; send it again to exit at once)`);
    onShutdown?.(signal);
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
  try {
    if (flags.healthPort !== undefined) {
      health = await startHealthServer(flags.healthPort, flags.healthHost ?? '0.0.0.0');
      say(`Health endpoint on http://${flags.healthHost ?? '0.0.0.0'}:${health.port} (/healthz, /readyz)`, { healthPort: health.port });
    }
    const { bus, modulePath } = await obtainBus(flags);
    try {
      await withTimeout(
        bus.start(parts),
        startTimeout,
        `The worker did not start within ${startTimeout} s. Is the broker in the config reachable? (Raise --start-timeout if starting is slow.)`,
      );
    } catch (error) {
      await closeQuietly(bus, 1000);
      throw error;
    }
    const description = bus.describe();
    const configPath = process.env['LIGHTBUS_CONFIG'] || undefined;
    if (jsonLogs(flags)) say('Lightbus worker started', { ...description, modulePath, configPath, parts });
    else if (!quiet(flags)) console.error(formatSummary(description, parts, modulePath, configPath));
    const idle =
      (!parts.rpcs || description.registeredApis.length === 0) && (!parts.events || description.listeners.length === 0) && (!parts.tasks || description.tasks.length === 0);
    if (idle) {
      console.error(
        '[lightbus] WARN  This worker has nothing to do: it serves no API, runs no listener and no task. Register an API (bus.registerApi), add a listener in bus.onStart(...), or a task with bus.every(...) — or check --only/--skip.',
      );
    }
    health?.setState(signalled === undefined ? 'ready' : 'stopping');
    say('Worker running. Press Ctrl+C to stop.');
    await shutdown;
    try {
      // close() lets handlers finish within the timeout, then closes the transports; a transport
      // that cannot close (a broker gone away) must not keep the process from exiting.
      await withTimeout(
        bus.close({ timeoutMs: shutdownTimeoutMs }),
        (shutdownTimeoutMs + CLOSE_GRACE_MS) / 1000,
        `Closing the bus did not finish within ${shutdownTimeoutMs + CLOSE_GRACE_MS} ms (a transport could not close its connections); exiting anyway. Unacknowledged events will be redelivered.`,
      );
    } catch (error) {
      console.error(formatFatal(error, { prefix: 'lightbus run: closing the bus failed', debug: isDebug(flags) }));
      return 1;
    }
    say('Worker stopped.');
    return 0;
  } finally {
    await health?.close();
    process.off('SIGINT', handle);
    process.off('SIGTERM', handle);
  }
}
