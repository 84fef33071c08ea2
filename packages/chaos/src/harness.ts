/**
 * What every scenario shares: unique names, the producer bus, the invariant checks, scaling.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { createBus, type ApiClient, type Bus, type Logger } from '@lightbus/core';
import { transportPlugin as amqpPlugin } from '@lightbus/amqp';
import { transportPlugin as natsPlugin } from '@lightbus/nats';
import { transportPlugin as redisPlugin } from '@lightbus/redis';
import { chaosApi, chaosImplementation, type ChaosApi } from './api.js';
import type { ScenarioRow } from './tally.js';
import type { TransportName } from './targets.js';

/** How much bigger than the default run: `LIGHTBUS_CHAOS_SCALE` (the soak run uses 10). */
export function chaosScale(): number {
  const raw = Number(process.env['LIGHTBUS_CHAOS_SCALE'] ?? '1');
  return Number.isFinite(raw) && raw >= 1 ? Math.min(raw, 100) : 1;
}

/** A unique API name for one scenario run. */
export function uniqueApiName(scenario: string): string {
  return `lbchaos_${randomBytes(4).toString('hex')}.${scenario.replace(/[^a-z0-9_]/gi, '_')}`;
}

/** What a scenario hands back: its table row and every broken invariant (empty when all held). */
export interface ScenarioResult {
  /** The table row. */
  row: ScenarioRow;
  /** Invariants that did not hold, in words. Empty means the scenario passed. */
  violations: string[];
  /** A longer account (printed by the tests), e.g. what happened to each kind of hostile entry. */
  details?: string;
}

/** Collects invariant violations. */
export class Checks {
  /** What failed. */
  readonly violations: string[] = [];

  /** Records `message` when `condition` is false. */
  that(condition: boolean, message: string): void {
    if (!condition) this.violations.push(message);
  }
}

/** A logger that keeps every line (to search for reasons, and for secrets that must not be there). */
export interface CapturingLogger extends Logger {
  /** Every line as `LEVEL message {fields}`. */
  readonly lines: string[];
}

/** Builds a {@link CapturingLogger}. */
export function capturingLogger(): CapturingLogger {
  const lines: string[] = [];
  const add = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${message}${fields ? ` ${JSON.stringify(fields)}` : ''}`);
  };
  return { lines, debug: add('DEBUG'), info: add('INFO'), warn: add('WARN'), error: add('ERROR') };
}


/** Options of {@link createChaosBus}. */
export interface ChaosBusOptions {
  /** API name. */
  apiName: string;
  /** Transport plugin name. Default `redis`. */
  transport?: TransportName;
  /** Transport options (url ...). */
  transportOptions: Record<string, unknown>;
  /** Register the API (to fire its events). Default true. */
  register?: boolean;
  /** Service name. */
  serviceName?: string;
  /** Extra per-API config. */
  apiConfig?: Record<string, unknown>;
  /** Logger. Default: a capturing logger. */
  logger?: Logger;
}

/** A bus in the test process (the producer and RPC caller of the scenarios). */
export function createChaosBus(options: ChaosBusOptions): { bus: Bus<[ChaosApi]>; api: ChaosApi; client: ApiClient<ChaosApi>; logger: Logger } {
  const api = chaosApi(options.apiName);
  const selection = { [options.transport ?? 'redis']: options.transportOptions };
  // The AMQP transport serves no schema role: schemas stay in memory (each process knows the API).
  const schemaSelection = options.transport === 'amqp' ? { memory: {} } : selection;
  const logger = options.logger ?? capturingLogger();
  const bus = createBus({
    apis: [api],
    serviceName: options.serviceName ?? 'lbchaos_producer',
    processName: `producer-${process.pid}`,
    logger,
    transports: [redisPlugin, natsPlugin, amqpPlugin],
    config: {
      bus: { schema: { transport: schemaSelection } },
      apis: { default: { rpc_transport: selection, result_transport: selection, event_transport: selection, schema_transport: schemaSelection, ...options.apiConfig } },
    },
  });
  if (options.register ?? true) bus.registerApi(api, chaosImplementation);
  return { bus, api, client: bus.client(api), logger };
}

/** Runs `count` tasks with at most `parallel` at once. */
export async function inParallel(count: number, parallel: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(parallel, count) }, async () => {
    while (next < count) {
      const i = next++;
      await task(i);
    }
  });
  await Promise.all(lanes);
}

/** Milliseconds since `start`, for notes. */
export function since(start: number): string {
  return `${((Date.now() - start) / 1000).toFixed(1)} s`;
}
