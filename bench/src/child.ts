/**
 * A process the orchestrator forks: the worker side, the client side, or both (in-process
 * targets). It reads its ChildSpec from LB_BENCH and talks to the orchestrator over IPC.
 */
import { Notifier } from '@lightbus/core';
import { filler, latencySummary, makeEvent, messageOf, nowNs, sleep, type ClientSide, type WorkerSide } from './common.js';
import type { ChildMessage, ChildSpec, ClientResult, ParentMessage, Role, ScenarioPlan } from './protocol.js';
import { loadTarget } from './targets/index.js';

const spec = JSON.parse(process.env.LB_BENCH ?? 'null') as ChildSpec | null;
if (!spec) throw new Error('child.ts is started by the bench orchestrator (cli.ts), with LB_BENCH set.');

const gc = (globalThis as { gc?: () => void }).gc;

function send(message: ChildMessage): void {
  process.send?.(message);
}

/** RSS and heap after a GC (when --expose-gc) and a short settle. */
async function memoryNow(): Promise<{ rss: number; heap: number }> {
  gc?.();
  await sleep(100);
  const usage = process.memoryUsage();
  return { rss: usage.rss, heap: usage.heapUsed };
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

/** In the soak, the worker reports `handled` once per this many events. */
const SOAK_REPORT_EVERY = 1000;
/**
 * In the soak, the client fires at most this many events ahead of the worker. A stream holds
 * only so many (Redis trims at `max_stream_length`, 100,000 by default): a producer that ran
 * further ahead would have events trimmed before they were read, and the soak would wait for
 * them forever.
 */
const SOAK_MAX_AHEAD = 50_000;

/** The worker half: handles events, reports `handled` (serial; every 1,000 in the soak), `drained`, `stats`. */
class WorkerHalf {
  readonly #side: WorkerSide;
  readonly #plan: ScenarioPlan;
  #handled = 0;
  #lastNs = 0;
  #expect = Infinity;
  readonly #latencies: number[] = [];
  #cpu0 = process.cpuUsage();
  #wall0 = nowNs();
  /** Where `handled` notifications go (the parent, or the client half in the same process). */
  onHandled: () => void = () => send({ from: 'worker', type: 'handled' });

  constructor(side: WorkerSide, plan: ScenarioPlan) {
    this.#side = side;
    this.#plan = plan;
  }

  async start(): Promise<void> {
    const serial = this.#plan.scenario === 'events-serial';
    const soak = this.#plan.scenario === 'soak';
    await this.#side.start((event) => {
      this.#handled++;
      this.#lastNs = nowNs();
      if (serial) {
        this.#latencies.push(this.#lastNs - event.t);
        this.onHandled();
      } else if (soak && this.#handled % SOAK_REPORT_EVERY === 0) {
        this.onHandled();
      }
      if (this.#handled >= this.#expect) this.#drained();
    });
  }

  /** Starts the measured window: forgets what the warm-up did. */
  go(): void {
    this.#handled = 0;
    this.#lastNs = 0;
    this.#expect = Infinity;
    this.#latencies.length = 0;
    this.#cpu0 = process.cpuUsage();
    this.#wall0 = nowNs();
  }

  expect(count: number): void {
    this.#expect = count;
    if (this.#handled >= count) this.#drained();
  }

  #drained(): void {
    this.#expect = Infinity;
    const latency = this.#latencies.length > 0 ? latencySummary(this.#latencies) : undefined;
    send({ from: 'worker', type: 'drained', result: { handled: this.#handled, lastNs: this.#lastNs, latency } });
  }

  async stop(): Promise<void> {
    const cpuMs = cpuMsSince(this.#cpu0);
    const wallMs = (nowNs() - this.#wall0) / 1e6;
    const { rss, heap } = await memoryNow();
    send({
      from: 'worker',
      type: 'stats',
      stats: { cpuMs, wallMs, rssAfter: rss, heapAfter: heap, maxRss: process.resourceUsage().maxRSS * 1024 },
    });
    await this.#side.close();
  }
}

/** The client half: runs the scenario's sending side. */
class ClientHalf {
  readonly #side: ClientSide;
  readonly #plan: ScenarioPlan;
  #handledWaiter: (() => void) | undefined;
  #handledPending = 0;
  /** Soak: events the worker reported handled, and where lanes wait for more. */
  #soakHandled = 0;
  readonly #soakProgress = new Notifier();

  constructor(side: ClientSide, plan: ScenarioPlan) {
    this.#side = side;
    this.#plan = plan;
  }

  start(): Promise<void> {
    return this.#side.start();
  }

  /** One event was handled by the worker (events-serial), or `SOAK_REPORT_EVERY` more (soak). */
  handled(): void {
    if (this.#plan.scenario === 'soak') {
      this.#soakHandled += SOAK_REPORT_EVERY;
      this.#soakProgress.notify();
      return;
    }
    const waiter = this.#handledWaiter;
    if (waiter) {
      this.#handledWaiter = undefined;
      waiter();
    } else {
      this.#handledPending++;
    }
  }

  #nextHandled(): Promise<void> {
    if (this.#handledPending > 0) {
      this.#handledPending--;
      return Promise.resolve();
    }
    return new Promise((resolve) => (this.#handledWaiter = resolve));
  }

  /** Runs the scenario with `count` messages at most, for `maxMs` at most. */
  async run(count: number, maxMs: number): Promise<ClientResult> {
    const plan = { ...this.#plan, count, maxMs };
    const data = filler(plan.fillerBytes);
    const cpu0 = process.cpuUsage();
    const startNs = nowNs();
    const deadline = startNs + plan.maxMs * 1e6;
    let ops = 0;
    let errors = 0;
    let latencies: number[] | undefined;
    switch (plan.scenario) {
      case 'events-bulk':
      case 'soak': {
        let next = 0;
        this.#soakHandled = 0;
        const lane = async () => {
          while (next < plan.count && nowNs() < deadline) {
            if (plan.scenario === 'soak' && next - this.#soakHandled > SOAK_MAX_AHEAD) {
              await this.#soakProgress.wait();
              continue;
            }
            const size = Math.min(plan.batch, plan.count - next);
            const events = [];
            for (let i = 0; i < size; i++) events.push(makeEvent(next++, data));
            try {
              await this.#side.fireBatch(events);
              ops += size;
            } catch {
              errors += size;
            }
          }
        };
        await Promise.all(Array.from({ length: plan.batchesInFlight }, lane));
        break;
      }
      case 'events-serial': {
        while (ops < plan.count && nowNs() < deadline) {
          const handled = this.#nextHandled();
          await this.#side.fireBatch([makeEvent(ops, data)]);
          await handled;
          ops++;
        }
        break;
      }
      case 'rpc-serial':
      case 'rpc-concurrent': {
        latencies = [];
        const lat = latencies;
        let next = 0;
        const lane = async () => {
          while (next < plan.count && nowNs() < deadline) {
            const n = next++;
            const t0 = nowNs();
            try {
              const result = await this.#side.call({ n, data });
              if (result !== n) throw new Error(`echo returned ${String(result)} for ${n}`);
              lat.push(nowNs() - t0);
              ops++;
            } catch {
              errors++;
            }
          }
        };
        const lanes = plan.scenario === 'rpc-serial' ? 1 : plan.inFlight;
        await Promise.all(Array.from({ length: lanes }, lane));
        break;
      }
    }
    const endNs = nowNs();
    return {
      ops,
      startNs,
      endNs,
      latency: latencies ? latencySummary(latencies) : undefined,
      cpuMs: cpuMsSince(cpu0),
      wallMs: (endNs - startNs) / 1e6,
      errors,
    };
  }

  close(): Promise<void> {
    return this.#side.close();
  }
}

async function main(s: ChildSpec): Promise<void> {
  const target = await loadTarget(s.targetId);
  const roles: Role[] = s.role === 'both' ? ['worker', 'client'] : [s.role];
  const worker = roles.includes('worker') ? new WorkerHalf(target.worker(s.ctx), s.plan) : undefined;
  const client = roles.includes('client') ? new ClientHalf(target.client(s.ctx), s.plan) : undefined;
  if (worker && client) worker.onHandled = () => client.handled();

  // The orchestrator disconnects once it has what it needs: leave at once, whatever a client
  // library still holds open.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (raw: ParentMessage) => {
    void (async () => {
      try {
        if (raw.to === 'worker' && worker) {
          if (raw.type === 'go') {
            worker.go();
            send({ from: 'worker', type: 'going' });
          }
          else if (raw.type === 'expect') worker.expect(raw.count);
          else if (raw.type === 'stop') {
            await worker.stop();
            send({ from: 'worker', type: 'closed' });
          }
        } else if (raw.to === 'client' && client) {
          if (raw.type === 'handled') client.handled();
          else if (raw.type === 'go') send({ from: 'client', type: 'done', result: await client.run(s.plan.count, s.plan.maxMs) });
          else if (raw.type === 'warmup') send({ from: 'client', type: 'warmed', result: await client.run(s.plan.warmup, 5000) });
          else if (raw.type === 'stop') {
            await client.close();
            send({ from: 'client', type: 'closed' });
          }
        }
      } catch (error) {
        send({ from: raw.to, type: 'error', message: messageOf(error) });
      }
    })();
  });

  if (worker) {
    await worker.start();
    const { rss, heap } = await memoryNow();
    send({ from: 'worker', type: 'ready', rss, heap });
  }
  if (client) {
    await client.start();
    const { rss, heap } = await memoryNow();
    send({ from: 'client', type: 'ready', rss, heap });
  }
}

main(spec).catch((error: unknown) => {
  send({ from: spec.role === 'both' ? 'worker' : spec.role, type: 'error', message: messageOf(error) });
});
