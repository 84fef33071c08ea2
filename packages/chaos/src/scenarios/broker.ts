/**
 * Broker scenarios, on any transport: the server restarted under load (with and without its data) and
 * paused (SIGSTOP) under RPC load.
 *
 * @module
 */
import { ErrorCodes, LightbusError } from '@lightbus/core';
import { Checks, chaosScale, createChaosBus, since, uniqueApiName, type CapturingLogger, type ScenarioResult } from '../harness.js';
import { Tally } from '../tally.js';
import { startWorker, waitUntil, type WorkerHandle } from '../worker-handle.js';
import type { ChaosTarget } from '../targets.js';

/**
 * The Redis server is SIGKILLed under load and started again after `downtimeMs`.
 *
 * - `persistent` (appendonly on): everything the broker acknowledged survives; the worker and
 *   the producer reconnect by themselves and every fired event is handled.
 * - not persistent: the stream and the group vanish with the server's memory; the worker
 *   recreates them (without spinning: its CPU use during the outage is measured) and every
 *   event fired after the restart is handled.
 */
export async function brokerRestart(target: ChaosTarget, options: { persistent: boolean; downtimeMs?: number }): Promise<ScenarioResult> {
  const scale = chaosScale();
  const count = 300 * scale;
  const downtimeMs = options.downtimeMs ?? 1500;
  const broker = await target.startBroker({ persistent: options.persistent });
  const apiName = uniqueApiName(options.persistent ? 'restart_aof' : 'restart_empty');
  const tally = new Tally();
  const checks = new Checks();
  const { bus, client, logger } = createChaosBus({ apiName, transport: target.name, transportOptions: broker.options() });
  const workers: WorkerHandle[] = [];
  const started = Date.now();
  let workerCpuDuringOutage = 0;
  let firedBeforeCrash = 0;
  try {
    const worker = startWorker(
      {
        apiName,
        transport: target.name,
        transportOptions: broker.options('fast'),
        serviceName: 'chaos_svc',
        processName: 'worker-a',
        listenerName: 'counter',
        handlerDelayMs: 2,
        concurrency: 4,
        batchSize: 20,
      },
      tally,
    );
    workers.push(worker);
    await worker.ready();
    // Fire at a steady pace (about 150/s) while the broker goes down and comes back.
    let restarted = false;
    const fired: number[] = [];
    const producer = (async () => {
      for (let seq = 1; seq <= count; seq++) {
        try {
          await client.tick.fire({ seq }, { timeout: 10 });
          // Without persistence, what the broker acknowledged before the crash died with it.
          if (options.persistent || restarted) tally.fired.add(seq);
          else firedBeforeCrash++;
          fired.push(seq);
        } catch {
          tally.fireErrors++;
        }
        await new Promise((r) => setTimeout(r, 6));
      }
    })();
    await waitUntil(() => fired.length >= count / 3, 30_000 * scale);
    await broker.kill();
    const cpuBefore = worker.cpuSeconds();
    const outageStart = Date.now();
    await new Promise((r) => setTimeout(r, downtimeMs));
    workerCpuDuringOutage = (worker.cpuSeconds() - cpuBefore) / ((Date.now() - outageStart) / 1000);
    await broker.restart();
    restarted = true;
    const restartedAt = Date.now();
    await producer;
    const complete = await waitUntil(() => tally.complete, 30_000 * scale);
    const recoveredIn = Date.now() - restartedAt;
    checks.that(worker.running, 'the worker process died');
    checks.that(complete, `not every kept event was handled within the time limit: ${tally.lostSeqs().length} missing (${tally.lostSeqs().slice(0, 10).join(', ')})`);
    checks.that(workerCpuDuringOutage < 0.5, `the worker used ${(workerCpuDuringOutage * 100).toFixed(0)}% of a core while Redis was down: a hot loop`);
    const errorLogs = worker.logs.filter((l) => l.level === 'warn' || l.level === 'error').length;
    checks.that(errorLogs < 60, `the worker logged ${errorLogs} warnings/errors around a ${downtimeMs} ms outage: too many (a loop without back-off?)`);
    checks.that(tally.corrupt.length === 0, 'handlers received corrupt events');
    const producerLines = (logger as CapturingLogger).lines.length;
    const row = tally.row(
      target.name,
      options.persistent ? 'broker SIGKILL + restart under load (data persisted)' : 'broker SIGKILL + restart, events gone (not persisted)',
      [
        `down ${downtimeMs} ms`,
        `worker CPU during outage ${(workerCpuDuringOutage * 100).toFixed(0)}%`,
        `${tally.fireErrors} fires failed`,
        options.persistent ? '' : `${firedBeforeCrash} fired before the crash not kept`,
        `all handled ${(recoveredIn / 1000).toFixed(1)} s after restart`,
        `${errorLogs} worker warnings, ${producerLines} producer log lines`,
        since(started),
      ]
        .filter(Boolean)
        .join('; '),
    );
    checks.that(row.lost === 0, `${row.lost} kept events lost`);
    return { row, violations: checks.violations };
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await bus.close({ timeoutMs: 2000 });
    await broker.stop();
  }
}

function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/**
 * The Redis server is paused (SIGSTOP) while callers make RPCs: every call must fail with
 * `LB_RPC_TIMEOUT` at its deadline (not hang until the server comes back), leave no timers or
 * waiters behind, and calls must succeed again once the server resumes.
 */
export async function brokerPaused(target: ChaosTarget): Promise<ScenarioResult> {
  const scale = chaosScale();
  const calls = 20 * scale;
  const timeoutS = 1;
  const broker = await target.startBroker({ persistent: false });
  const apiName = uniqueApiName('paused');
  const checks = new Checks();
  const workers: WorkerHandle[] = [];
  const { bus, client } = createChaosBus({ apiName, transport: target.name, transportOptions: broker.options(), register: false });
  const started = Date.now();
  let answered = 0;
  let timedOut = 0;
  let wrong = 0;
  let hung = 0;
  try {
    const worker = startWorker({ apiName, transport: target.name, transportOptions: broker.options(), serviceName: 'chaos_rpc', processName: 'rpc-worker', serveRpcs: true });
    workers.push(worker);
    await worker.ready();
    checks.that((await client.echo({ value: 'before' })) === 'before', 'the RPC before the pause failed');
    await new Promise((r) => setTimeout(r, 200));
    const timersBefore = activeTimers();

    broker.pause();
    const pausedAt = Date.now();
    const outcomes = await Promise.all(
      Array.from({ length: calls }, async (_, i) => {
        const t0 = Date.now();
        const call = client.echo({ value: `paused-${i}` }, { timeout: timeoutS });
        // The scenario's own bound: a call still pending 5 s past its deadline has hung.
        let guard: NodeJS.Timeout | undefined;
        const hang = new Promise<'hung'>((resolve) => {
          guard = setTimeout(() => resolve('hung'), timeoutS * 1000 + 5000);
        });
        try {
          const outcome = await Promise.race([call.then(() => 'answered' as const), hang]);
          return { outcome, ms: Date.now() - t0 };
        } catch (error) {
          const code = LightbusError.isInstance(error) ? error.code : String(error);
          return { outcome: code === ErrorCodes.RPC_TIMEOUT ? ('timeout' as const) : (`error ${code}` as const), ms: Date.now() - t0 };
        } finally {
          clearTimeout(guard);
          call.catch(() => undefined);
        }
      }),
    );
    const pausedFor = Date.now() - pausedAt;
    for (const o of outcomes) {
      if (o.outcome === 'timeout') timedOut++;
      else if (o.outcome === 'hung') hung++;
      else if (o.outcome === 'answered') answered++;
      else wrong++;
    }
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    checks.that(hung === 0, `${hung} of ${calls} RPCs hung past their ${timeoutS} s deadline while Redis was paused (still pending 5 s later)`);
    checks.that(timedOut === calls, `${calls - timedOut} of ${calls} RPCs did not fail with ${ErrorCodes.RPC_TIMEOUT}: ${outcomes.filter((o) => o.outcome !== 'timeout').map((o) => o.outcome).slice(0, 3).join(', ')}`);
    checks.that(slowest <= timeoutS * 1000 + 1000, `the slowest RPC took ${slowest} ms to fail against a ${timeoutS * 1000} ms deadline`);

    broker.resume();
    const resumedAt = Date.now();
    const recovered = await waitUntil(async () => {
      try {
        return (await client.echo({ value: 'after' }, { timeout: 2 })) === 'after';
      } catch {
        return false;
      }
    }, 20_000);
    const recoveryMs = Date.now() - resumedAt;
    checks.that(recovered, 'RPCs did not work again within 20 s after the server resumed');
    // Ten more calls after recovery, all answered.
    const after = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => client.echo({ value: `after-${i}` })));
    const afterOk = after.filter((r, i) => r.status === 'fulfilled' && r.value === `after-${i}`).length;
    checks.that(afterOk === 10, `${10 - afterOk} of 10 RPCs after recovery failed`);
    await new Promise((r) => setTimeout(r, 300));
    const timersAfter = activeTimers();
    checks.that(timersAfter <= timersBefore + 2, `timers leaked: ${timersBefore} before the pause, ${timersAfter} after recovery`);
    // Calls abandoned at their deadline may still reach the worker once Redis resumes (their
    // expiry key is written then): at most once still holds, but their results are orphans.
    const orphans = broker.redis ? await broker.redis.command(['KEYS', '*:result:*']) : undefined;
    const orphanResults = Array.isArray(orphans) ? `${orphans.length} abandoned calls executed after resume (orphan results); ` : '';
    const served = worker.running;
    checks.that(served, 'the RPC worker died');
    return {
      row: {
        transport: target.name,
        scenario: 'broker SIGSTOP under RPC load, then SIGCONT',
        fired: calls + 10,
        handled: timedOut + afterOk,
        duplicates: 0,
        lost: hung + wrong + answered + (10 - afterOk),
        notes: `${timedOut} timed out (slowest ${slowest} ms, deadline ${timeoutS * 1000} ms), paused ${(pausedFor / 1000).toFixed(1)} s; recovered in ${recoveryMs} ms; ${orphanResults}timers ${timersBefore}->${timersAfter}; ${since(started)}`,
      },
      violations: checks.violations,
    };
  } finally {
    try {
      broker.resume();
    } catch {
      // not running
    }
    await Promise.all(workers.map((w) => w.kill()));
    await bus.close({ timeoutMs: 2000 });
    await broker.stop();
  }
}
