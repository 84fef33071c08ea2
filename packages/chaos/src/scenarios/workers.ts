/**
 * Worker scenarios, on any transport: a worker SIGKILLed mid-batch (restarted, or taken over by a second
 * worker of the same service), and SIGTERM under load.
 *
 * @module
 */
import { Checks, chaosScale, createChaosBus, inParallel, since, uniqueApiName, type ScenarioResult } from '../harness.js';
import { Tally } from '../tally.js';
import { startWorker, waitUntil, type WorkerHandle } from '../worker-handle.js';
import type { WorkerConfig } from '../worker-protocol.js';
import type { ChaosTarget } from '../targets.js';

async function fireAll(fire: (seq: number) => Promise<void>, tally: Tally, count: number, parallel = 20): Promise<void> {
  await inParallel(count, parallel, async (i) => {
    const seq = i + 1;
    try {
      await fire(seq);
      tally.fired.add(seq);
    } catch {
      tally.fireErrors++;
    }
  });
}

/**
 * Fires `seq: 0` until a worker handles it: the listener's queue/group exists from then on
 * (RabbitMQ keeps no history, so events fired before the queue exists reach nobody).
 */
export async function warmUp(fire: (seq: number) => Promise<void>, tally: Tally, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await fire(0).catch(() => undefined);
    if (await waitUntil(() => tally.done.has(0), 300)) return true;
  }
  return false;
}

/**
 * A worker is SIGKILLed while it holds a batch (some handlers running, some events read but not
 * started). Then either the same worker restarts under the same process name (it re-reads its
 * own unacknowledged events), or a second worker of the same service takes them over (reclaim
 * after `acknowledgement_timeout`). Nothing may be lost; duplicates are counted.
 */
export async function workerSigkill(target: ChaosTarget, mode: 'restart' | 'takeover'): Promise<ScenarioResult> {
  const scale = chaosScale();
  const count = 300 * scale;
  const broker = await target.startBroker({ persistent: true });
  const apiName = uniqueApiName(`kill_${mode}`);
  const tally = new Tally();
  const checks = new Checks();
  const { bus, client } = createChaosBus({ apiName, transport: target.name, transportOptions: broker.options() });
  const workers: WorkerHandle[] = [];
  const started = Date.now();
  try {
    const base: WorkerConfig = {
      apiName,
      transport: target.name,
      transportOptions: broker.options('fast'),
      serviceName: 'chaos_svc',
      processName: 'worker-a',
      listenerName: 'counter',
      handlerDelayMs: 10,
      concurrency: 4,
      batchSize: 20,
    };
    const a = startWorker(base, tally);
    workers.push(a);
    await a.ready();
    checks.that(await warmUp((seq) => client.tick.fire({ seq }), tally), 'the worker never received the warm-up event');
    await fireAll((seq) => client.tick.fire({ seq }), tally, count);
    const killAt = Math.floor(count / 3);
    await waitUntil(() => tally.done.size >= killAt, 30_000 * scale);
    await a.kill();
    const inFlight = tally.unfinishedStarts().length;
    const handledAtKill = tally.done.size;
    checks.that(handledAtKill < count, `the worker finished everything (${handledAtKill}) before it was killed; the kill proved nothing`);

    const b = startWorker({ ...base, processName: mode === 'restart' ? 'worker-a' : 'worker-b' }, tally);
    workers.push(b);
    await b.ready();
    const complete = await waitUntil(() => tally.complete, 30_000 * scale);
    checks.that(complete, `not every event was handled within the time limit: ${tally.lostSeqs().length} missing`);
    checks.that(tally.corrupt.length === 0, `handlers received corrupt events: ${tally.corrupt.slice(0, 3).join('; ')}`);
    checks.that(tally.fireErrors === 0, `${tally.fireErrors} fire() calls failed`);
    const row = tally.row(target.name, `worker SIGKILL mid-batch, ${mode === 'restart' ? 'same worker restarts' : 'second worker takes over'}`, `killed after ${handledAtKill}, ${inFlight} in flight; ${since(started)}`);
    checks.that(row.lost === 0, `${row.lost} events lost: ${tally.lostSeqs().slice(0, 10).join(', ')}`);
    return { row, violations: checks.violations };
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await bus.close({ timeoutMs: 2000 });
    await broker.stop();
  }
}

/**
 * SIGTERM under load: the worker stops taking work, lets in-flight handlers finish and
 * acknowledges them, then exits. A new worker handles the rest. Nothing lost, nothing handled twice.
 */
export async function sigtermUnderLoad(target: ChaosTarget): Promise<ScenarioResult> {
  const scale = chaosScale();
  const count = 300 * scale;
  const broker = await target.startBroker({ persistent: true });
  const apiName = uniqueApiName('sigterm');
  const tally = new Tally();
  const checks = new Checks();
  const { bus, client } = createChaosBus({ apiName, transport: target.name, transportOptions: broker.options() });
  const workers: WorkerHandle[] = [];
  const started = Date.now();
  try {
    const base: WorkerConfig = {
      apiName,
      transport: target.name,
      // The default (long) acknowledgement timeout: the new worker must not need a reclaim to finish.
      transportOptions: broker.options(),
      serviceName: 'chaos_svc',
      processName: 'worker-a',
      listenerName: 'counter',
      handlerDelayMs: 40,
      concurrency: 4,
      batchSize: 10,
    };
    const a = startWorker(base, tally);
    workers.push(a);
    await a.ready();
    checks.that(await warmUp((seq) => client.tick.fire({ seq }), tally), 'the worker never received the warm-up event');
    await fireAll((seq) => client.tick.fire({ seq }), tally, count);
    await waitUntil(() => tally.done.size >= count / 3, 30_000 * scale);
    const termAt = Date.now();
    const outcome = await a.terminate(15_000);
    const closed = a.lines.find((l) => l.t === 'closed');
    checks.that(outcome === 0, `the worker did not exit cleanly on SIGTERM (${String(outcome)})`);
    const unfinished = tally.unfinishedStarts();
    checks.that(unfinished.length === 0, `${unfinished.length} handlers started but did not finish before the worker exited: ${unfinished.slice(0, 5).join(', ')}`);
    const handledByA = tally.done.size;
    // Redis: what A read but never started stays pending for the group (nothing it finished).
    const pendingCount = broker.redis ? Number(((await broker.redis.command(['XPENDING', `${apiName}.*:stream`, 'chaos_svc-counter'])) as [number])[0]) : undefined;

    const b = startWorker({ ...base, processName: 'worker-a' }, tally);
    workers.push(b);
    await b.ready();
    const complete = await waitUntil(() => tally.complete, 30_000 * scale);
    checks.that(complete, `not every event was handled: ${tally.lostSeqs().length} missing`);
    const row = tally.row(target.name, 'SIGTERM under load, then a new worker', `stopped in ${closed && closed.t === 'closed' ? closed.ms : Date.now() - termAt} ms after ${handledByA} handled${pendingCount === undefined ? '' : `, ${pendingCount} left pending unstarted`}; ${since(started)}`);
    checks.that(row.lost === 0, `${row.lost} events lost (not handled within the time limit): ${tally.lostSeqs().slice(0, 10).join(', ')}`);
    checks.that(row.duplicates === 0, `${row.duplicates} events handled twice after a graceful stop`);
    return { row, violations: checks.violations };
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await bus.close({ timeoutMs: 2000 });
    await broker.stop();
  }
}
