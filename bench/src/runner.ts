/**
 * Runs one scenario once: forks the worker (waits until it is ready), forks the client, starts
 * both, waits for the client to finish and the worker to have handled what was sent, collects
 * CPU and memory, stops both, and cleans the broker.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { RunContext } from './common.js';
import { loadTarget, type TargetInfo } from './targets/index.js';
import type { ChildMessage, ChildSpec, ClientResult, DrainResult, ParentMessage, Role, ScenarioPlan, WorkerStats } from './protocol.js';

/** Addresses of the brokers. */
export interface BrokerUrls {
  /** Redis (database 9). */
  redisUrl: string;
  /** NATS. */
  natsUrl: string;
  /** RabbitMQ. */
  amqpUrl: string;
  /** Listener concurrency of the bus targets. */
  busListenerConcurrency: number;
}

/** What one run measured. */
export interface RunResult {
  /** Events handled per second (events scenarios) or calls answered per second (RPC). */
  rate: number;
  /** Messages that made it (handled events, answered calls). */
  ops: number;
  /** Events fired or calls attempted that failed. */
  errors: number;
  /** p50 latency, ms (events-serial: fire → handled in the worker; RPC: round trip). */
  p50Ms: number | null;
  /** p99 latency, ms. */
  p99Ms: number | null;
  /** CPU of the client process, ms (whole process for in-process targets). */
  clientCpuMs: number;
  /** Client CPU as % of one core over its window. */
  clientCpuPct: number;
  /** CPU of the worker process, ms (null for in-process targets). */
  workerCpuMs: number | null;
  /** Worker CPU as % of one core over its window. */
  workerCpuPct: number | null;
  /** Worker RSS at rest (after start, before load), bytes. */
  workerRssRest: number;
  /** Worker RSS after the run, bytes. */
  workerRssAfter: number;
  /** Worker heap used at rest and after, bytes. */
  workerHeapRest: number;
  /** Worker heap used after the run, bytes. */
  workerHeapAfter: number;
  /** Worker peak RSS, bytes. */
  workerMaxRss: number;
  /** Wall time of the measured window, ms. */
  wallMs: number;
  /** True when the worker did not handle everything that was sent before the drain timeout. */
  incomplete: boolean;
  /**
   * CPU the Redis server used over the measured window, ms (`INFO cpu`, user + system, main
   * thread and children): Redis targets only, else null. Server-wide: other clients of the same
   * server count too.
   */
  brokerCpuMs: number | null;
}

/** The Redis server's CPU seconds so far (user + system), from `INFO cpu`. */
async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  let total = 0;
  for (const key of ['used_cpu_sys', 'used_cpu_user']) {
    const match = new RegExp(`^${key}:([\\d.]+)`, 'm').exec(info);
    if (match) total += Number(match[1]);
  }
  return total;
}

/** Extra process options. */
export interface RunOptions {
  /** Directory for `--cpu-prof` output, when profiling. */
  profileDir?: string;
}

const CHILD = fileURLToPath(new URL(`./child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

/** A forked child and the messages it sent, awaited by role and type. */
class ChildHandle {
  readonly process: ChildProcess;
  readonly #queue: ChildMessage[] = [];
  readonly #waiters: { match: (m: ChildMessage) => boolean; resolve: (m: ChildMessage) => void }[] = [];
  #exitError: Error | undefined;
  /** Called for `handled` messages (relayed to the client). */
  onHandled: (() => void) | undefined;

  constructor(spec: ChildSpec, options: RunOptions) {
    const execArgv = [...process.execArgv, '--expose-gc'];
    if (options.profileDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.profileDir}`, `--cpu-prof-name=${spec.targetId}-${spec.plan.scenario}-${spec.role}-${spec.ctx.id}.cpuprofile`);
    this.process = fork(CHILD, [], {
      env: { ...process.env, LB_BENCH: JSON.stringify(spec), LIGHTBUS_LOG_LEVEL: process.env.LIGHTBUS_LOG_LEVEL ?? 'warn' },
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.process.on('message', (m: ChildMessage) => {
      if (m.type === 'handled') {
        this.onHandled?.();
        return;
      }
      const index = this.#waiters.findIndex((w) => w.match(m));
      if (index >= 0) this.#waiters.splice(index, 1)[0]!.resolve(m);
      else this.#queue.push(m);
    });
    this.process.on('exit', (code, signal) => {
      this.#exitError = new Error(`the ${spec.role} process of ${spec.targetId} exited (${signal ?? code})`);
    });
  }

  send(message: ParentMessage): void {
    if (this.process.connected) this.process.send(message);
  }

  /** The next message of that type from that role; an `error` message from it rejects. */
  async waitFor(from: Role, type: ChildMessage['type'], timeoutMs: number): Promise<ChildMessage> {
    const match = (m: ChildMessage) => m.from === from && (m.type === type || m.type === 'error');
    const queued = this.#queue.findIndex(match);
    let message: ChildMessage;
    if (queued >= 0) {
      message = this.#queue.splice(queued, 1)[0]!;
    } else {
      message = await new Promise<ChildMessage>((resolve, reject) => {
        const waiter = { match, resolve };
        const timer = setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          reject(this.#exitError ?? new Error(`no "${type}" from the ${from} within ${timeoutMs} ms`));
        }, timeoutMs);
        this.#waiters.push({
          match,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
      });
    }
    if (message.type === 'error') throw new Error(`${from}: ${message.message}`);
    return message;
  }

  /** Disconnects and waits for the exit; kills it after `graceMs`. */
  async end(graceMs = 5000): Promise<void> {
    const child = this.process;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.disconnect();
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** A fresh run id: letters and digits. */
export function newRunId(): string {
  return `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

/** Runs `plan` once against `target`. */
export async function runOnce(target: TargetInfo, plan: ScenarioPlan, urls: BrokerUrls, options: RunOptions = {}): Promise<RunResult> {
  const ctx: RunContext = { id: newRunId(), scenario: plan.scenario, ...urls };
  const spec = (role: ChildSpec['role']): ChildSpec => ({ role, targetId: target.id, ctx, plan });
  const children: ChildHandle[] = [];
  const startTimeout = 30_000;
  // Redis reports its own CPU: read before and after the measured window.
  const broker = target.transport === 'redis' ? new Redis(urls.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 }) : undefined;
  try {
    let workerProc: ChildHandle;
    let clientProc: ChildHandle;
    if (target.inProcess) {
      workerProc = clientProc = new ChildHandle(spec('both'), options);
      children.push(workerProc);
    } else {
      workerProc = new ChildHandle(spec('worker'), options);
      children.push(workerProc);
    }
    const ready = (await workerProc.waitFor('worker', 'ready', startTimeout)) as Extract<ChildMessage, { type: 'ready' }>;
    if (!target.inProcess) {
      clientProc = new ChildHandle(spec('client'), options);
      children.push(clientProc);
      workerProc.onHandled = () => clientProc.send({ to: 'client', type: 'handled' });
    }
    await clientProc!.waitFor('client', 'ready', startTimeout);

    const isEventScenario = plan.scenario.startsWith('events') || plan.scenario === 'soak';
    if (plan.warmup > 0) {
      // Not measured: JIT, connections, pools. The worker handles all of it before the clock starts.
      clientProc!.send({ to: 'client', type: 'warmup' });
      const warmed = (await clientProc!.waitFor('client', 'warmed', 60_000)) as Extract<ChildMessage, { type: 'warmed' }>;
      if (isEventScenario) {
        workerProc.send({ to: 'worker', type: 'expect', count: warmed.result.ops });
        await workerProc.waitFor('worker', 'drained', 15_000);
      }
    }
    // The worker forgets the warm-up before the client starts: were both told at once, a fast
    // worker could count the first measured events and then reset its count, and never drain.
    workerProc.send({ to: 'worker', type: 'go' });
    await workerProc.waitFor('worker', 'going', 15_000);
    const cpu0 = broker ? await redisCpuSeconds(broker) : 0;
    clientProc!.send({ to: 'client', type: 'go' });
    const done = (await clientProc!.waitFor('client', 'done', plan.maxMs + 60_000)) as Extract<ChildMessage, { type: 'done' }>;
    const client: ClientResult = done.result;
    let drain: DrainResult | undefined;
    let incomplete = false;
    if (isEventScenario) {
      workerProc.send({ to: 'worker', type: 'expect', count: client.ops });
      try {
        drain = ((await workerProc.waitFor('worker', 'drained', Math.max(10_000, plan.maxMs))) as Extract<ChildMessage, { type: 'drained' }>).result;
      } catch {
        incomplete = true;
      }
    }
    const brokerCpuMs = broker ? ((await redisCpuSeconds(broker)) - cpu0) * 1000 : null;
    clientProc!.send({ to: 'client', type: 'stop' });
    await clientProc!.waitFor('client', 'closed', 15_000).catch(() => undefined);
    workerProc.send({ to: 'worker', type: 'stop' });
    const stats: WorkerStats = ((await workerProc.waitFor('worker', 'stats', 15_000)) as Extract<ChildMessage, { type: 'stats' }>).stats;
    await workerProc.waitFor('worker', 'closed', 15_000).catch(() => undefined);

    const isEvents = plan.scenario !== 'rpc-serial' && plan.scenario !== 'rpc-concurrent';
    let rate: number;
    let ops: number;
    if (plan.scenario === 'events-bulk' || plan.scenario === 'soak') {
      ops = drain?.handled ?? 0;
      const span = drain ? drain.lastNs - client.startNs : 0;
      rate = span > 0 ? (ops / span) * 1e9 : 0;
    } else {
      ops = client.ops;
      rate = client.wallMs > 0 ? (client.ops / client.wallMs) * 1000 : 0;
    }
    const latency = isEvents ? drain?.latency : client.latency;
    return {
      rate,
      ops,
      errors: client.errors,
      p50Ms: latency?.p50Ms ?? null,
      p99Ms: latency?.p99Ms ?? null,
      clientCpuMs: client.cpuMs,
      clientCpuPct: client.wallMs > 0 ? (client.cpuMs / client.wallMs) * 100 : 0,
      workerCpuMs: target.inProcess ? null : stats.cpuMs,
      workerCpuPct: target.inProcess ? null : stats.wallMs > 0 ? (stats.cpuMs / stats.wallMs) * 100 : 0,
      workerRssRest: ready.rss,
      workerRssAfter: stats.rssAfter,
      workerHeapRest: ready.heap,
      workerHeapAfter: stats.heapAfter,
      workerMaxRss: stats.maxRss,
      wallMs: client.wallMs,
      incomplete,
      brokerCpuMs,
    };
  } finally {
    broker?.disconnect();
    await Promise.all(children.map((c) => c.end()));
    try {
      await (await loadTarget(target.id)).cleanup?.(ctx);
    } catch (error) {
      console.error(`cleanup of ${target.id} run ${ctx.id} failed: ${(error as Error).message}`);
    }
  }
}
