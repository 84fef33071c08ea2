/**
 * A chaos worker: a real process running core's bus with a real transport, the way
 * `lightbus run` would, so SIGKILL and SIGTERM are real. Started by {@link startWorker}.
 *
 * @module
 */
import { createBus, type Logger } from '@lightbus/core';
import { transportPlugin as amqpPlugin } from '@lightbus/amqp';
import { transportPlugin as natsPlugin } from '@lightbus/nats';
import { transportPlugin as redisPlugin } from '@lightbus/redis';
import { chaosApi, chaosImplementation } from './api.js';
import { WORKER_ENV, type WorkerConfig, type WorkerLine } from './worker-protocol.js';

const say = (line: WorkerLine) => process.stdout.write(`${JSON.stringify(line)}\n`);

const baselineProtoKeys = new Set(Object.getOwnPropertyNames(Object.prototype));
function pollution(): string[] {
  const found = Object.getOwnPropertyNames(Object.prototype).filter((k) => !baselineProtoKeys.has(k));
  const probe = {} as Record<string, unknown>;
  for (const k of ['polluted', 'isAdmin', 'x']) if (probe[k] !== undefined) found.push(`({}).${k}`);
  if (Object.getPrototypeOf(probe) !== Object.prototype) found.push('prototype chain');
  return found;
}

/**
 * Finds values whose prototype was replaced (a `__proto__` key assigned instead of defined):
 * what a handler receives must be plain JSON data. Looks 64 levels deep at most.
 */
function replacedPrototype(value: unknown): string | undefined {
  const stack: Array<{ v: unknown; path: string; depth: number }> = [{ v: value, path: '$', depth: 0 }];
  while (stack.length > 0) {
    const { v, path, depth } = stack.pop()!;
    if (typeof v !== 'object' || v === null || depth > 64) continue;
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return `${path} has a foreign prototype`;
    for (const key of Object.keys(v)) stack.push({ v: (v as Record<string, unknown>)[key], path: `${path}.${key}`, depth: depth + 1 });
  }
  return undefined;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env[WORKER_ENV] ?? '{}') as WorkerConfig;
  const api = chaosApi(config.apiName);
  const selection = { [config.transport]: config.transportOptions };
  // The AMQP transport serves no schema role: schemas stay in memory (each process knows the API).
  const schemaSelection = config.transport === 'amqp' ? { memory: {} } : selection;
  const json = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
  const logger: Logger = { debug: () => undefined, info: json('info'), warn: json('warn'), error: json('error') };
  const bus = createBus({
    apis: [api],
    serviceName: config.serviceName,
    processName: config.processName,
    logger,
    transports: [redisPlugin, natsPlugin, amqpPlugin],
    config: {
      bus: { schema: { transport: schemaSelection } },
      apis: {
        default: {
          rpc_transport: selection,
          result_transport: selection,
          event_transport: selection,
          schema_transport: schemaSelection,
          ...(config.maxDeliveries === undefined ? {} : { max_deliveries: config.maxDeliveries }),
          ...(config.retryDelay === undefined ? {} : { retry_delay: config.retryDelay, max_retry_delay: config.retryDelay * 4 }),
          ...config.apiConfig,
        },
      },
    },
  });
  if (config.serveRpcs) bus.registerApi(api, chaosImplementation);
  const poison = new Set(config.poisonSeqs ?? []);
  let running = 0;
  let maxRunning = 0;
  if (config.listenerName) {
    bus.client(api).tick.listen(
      async (params, event) => {
        const { seq } = params;
        if (typeof seq !== 'number' || !Number.isInteger(seq)) {
          say({ t: 'corrupt', detail: `seq is ${typeof seq}` });
          return;
        }
        const foreign = replacedPrototype(params);
        if (foreign) say({ t: 'corrupt', detail: `seq ${seq}: ${foreign}` });
        running++;
        maxRunning = Math.max(maxRunning, running);
        try {
          say({ t: 'start', seq, d: event.deliveryCount });
          if (config.handlerDelayMs) await new Promise((r) => setTimeout(r, config.handlerDelayMs));
          if (poison.has(seq)) {
            say({ t: 'fail', seq, d: event.deliveryCount });
            throw new Error(`poison event ${seq}: this handler always fails on it`);
          }
          say({ t: 'done', seq, d: event.deliveryCount });
        } finally {
          running--;
        }
      },
      {
        listenerName: config.listenerName,
        ...(config.concurrency === undefined ? {} : { concurrency: config.concurrency }),
        ...(config.batchSize === undefined ? {} : { batchSize: config.batchSize }),
        since: 'all',
      },
    );
  }
  let closing = false;
  const report = () => {
    say({ t: 'proto', polluted: pollution() });
    say({ t: 'concurrency', max: maxRunning });
  };
  process.on('SIGUSR2', report);
  process.once('SIGTERM', () => {
    if (closing) return;
    closing = true;
    const started = Date.now();
    void bus
      .close({ timeoutMs: config.stopTimeoutMs ?? 10_000 })
      .then(() => {
        report();
        say({ t: 'closed', ms: Date.now() - started });
        process.exit(0);
      })
      .catch((error: unknown) => {
        say({ t: 'fatal', error: String(error) });
        process.exit(1);
      });
  });
  await bus.start();
  say({ t: 'ready', pid: process.pid });
}

main().catch((error: unknown) => {
  say({ t: 'fatal', error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
  process.exit(1);
});
