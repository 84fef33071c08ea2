/**
 * RPC failure scenarios, on any transport: arguments that fail validation, an API nobody serves, and a
 * handler slower than the caller's deadline.
 *
 * @module
 */
import { ErrorCodes, LightbusError, RemoteError } from '@lightbus/core';
import { Checks, chaosScale, createChaosBus, since, uniqueApiName, type ScenarioResult } from '../harness.js';
import { startWorker, waitUntil, type WorkerHandle } from '../worker-handle.js';
import type { ChaosTarget } from '../targets.js';

/** What a call ended with. */
async function outcome(call: Promise<unknown>): Promise<{ value?: unknown; error?: unknown; ms: number }> {
  const t0 = Date.now();
  try {
    return { value: await call, ms: Date.now() - t0 };
  } catch (error) {
    return { error, ms: Date.now() - t0 };
  }
}

const codeOf = (error: unknown) => (LightbusError.isInstance(error) ? error.code : undefined);

/**
 * - Arguments that fail the worker's validation come back as an error naming the validation
 *   failure and the bad path; valid calls sent alongside are answered (the worker keeps serving).
 * - The caller's own validation refuses bad arguments before anything is sent.
 * - A call to an API nobody serves fails with LB_RPC_TIMEOUT at its deadline.
 * - A handler slower than the deadline: the caller gets LB_RPC_TIMEOUT; the late result is
 *   dropped by the worker (never written), and the next calls get their own, fresh results.
 */
export async function rpcFailures(target: ChaosTarget): Promise<ScenarioResult> {
  const scale = chaosScale();
  const rounds = 10 * scale;
  const broker = await target.startBroker({ persistent: false });
  const apiName = uniqueApiName('rpc');
  const checks = new Checks();
  const workers: WorkerHandle[] = [];
  // A caller that does not validate what it sends, so bad arguments reach the worker.
  const loose = createChaosBus({ apiName, transport: target.name, transportOptions: broker.options(), register: false, apiConfig: { validate: { incoming: true, outgoing: false } } });
  const strict = createChaosBus({ apiName, transport: target.name, transportOptions: broker.options(), register: false });
  const started = Date.now();
  let calls = 0;
  let asExpected = 0;
  const expectThat = (ok: boolean, message: string) => {
    calls++;
    if (ok) asExpected++;
    checks.that(ok, message);
  };
  try {
    const worker = startWorker({ apiName, transport: target.name, transportOptions: broker.options(), serviceName: 'chaos_rpc', processName: 'rpc-worker', serveRpcs: true });
    workers.push(worker);
    await worker.ready();

    // 1. Validation on the worker, mixed with valid calls.
    const mixed = await Promise.all(
      Array.from({ length: rounds * 2 }, (_, i) =>
        i % 2 === 0 ? outcome(loose.client.strict({ count: -i - 1 })) : outcome(loose.client.strict({ count: i })),
      ),
    );
    mixed.forEach((o, i) => {
      if (i % 2 === 0) {
        const remote = o.error instanceof RemoteError ? o.error : undefined;
        expectThat(
          remote !== undefined && remote.remoteError.includes(ErrorCodes.VALIDATION_FAILED) && remote.remoteError.includes('$.count'),
          `strict({ count: ${-i - 1} }) did not come back as a validation error naming $.count: ${String(o.error ?? o.value)}`,
        );
      } else expectThat(o.value === i, `strict({ count: ${i} }) gave ${String(o.value ?? o.error)}`);
    });
    expectThat((await loose.client.echo({ value: 'still serving' })) === 'still serving', 'the worker stopped serving after invalid calls');
    checks.that(worker.running, 'the worker died on invalid arguments');

    // 2. The caller's own validation: nothing is sent.
    const local = await outcome(strict.client.strict({ count: -1 }));
    const queued = broker.redis ? await broker.redis.command(['LLEN', `${apiName}:rpc_queue`]) : 0;
    expectThat(codeOf(local.error) === ErrorCodes.VALIDATION_FAILED && queued === 0, `the caller's validation did not refuse strict({ count: -1 }) locally: ${String(local.error)}`);

    // 3. An API nobody serves: a clean timeout at the deadline.
    const nobody = `${apiName}_nobody`;
    const unserved = await Promise.all(Array.from({ length: 3 }, () => outcome(strict.bus.api(nobody).call('ping', {}, { timeout: 0.5 }))));
    // Clean means: LB_RPC_TIMEOUT at the deadline, or (a transport that knows nobody listens,
    // NATS) an earlier Lightbus error that says no worker serves the API.
    for (const o of unserved) {
      const timedOut = codeOf(o.error) === ErrorCodes.RPC_TIMEOUT && o.ms >= 450 && o.ms < 2000;
      const toldEarly = LightbusError.isInstance(o.error) && o.ms < 500 && /no worker|nobody|no responders/i.test(o.error.message);
      expectThat(timedOut || toldEarly, `a call to an unserved API ended with ${String(codeOf(o.error) ?? o.value)} after ${o.ms} ms (want ${ErrorCodes.RPC_TIMEOUT} at 500 ms, or an earlier error saying no worker serves it)`);
    }
    const unservedNote = unserved.every((o) => codeOf(o.error) === ErrorCodes.RPC_TIMEOUT)
      ? `unserved timed out in ${Math.max(...unserved.map((o) => o.ms))} ms`
      : `unserved failed fast (${[...new Set(unserved.map((o) => codeOf(o.error)))].join(', ')}: no worker serves it) in ${Math.max(...unserved.map((o) => o.ms))} ms`;

    // 4. A slow handler past the deadline.
    const stale = await outcome(strict.client.slow({ ms: 1200 }, { timeout: 0.4 }));
    expectThat(codeOf(stale.error) === ErrorCodes.RPC_TIMEOUT, `the slow call ended with ${String(codeOf(stale.error) ?? stale.value)}, not ${ErrorCodes.RPC_TIMEOUT}`);
    // Fresh calls while the stale one still runs get their own answers.
    const fresh = await Promise.all(Array.from({ length: rounds }, (_, i) => outcome(strict.client.echo({ value: `fresh-${i}` }))));
    fresh.forEach((o, i) => expectThat(o.value === `fresh-${i}`, `echo(fresh-${i}) gave ${String(o.value ?? o.error)}`));
    const quick = await outcome(strict.client.slow({ ms: 20 }, { timeout: 3 }));
    expectThat(quick.value === 20, `slow({ ms: 20 }) gave ${String(quick.value ?? quick.error)}, not its own result (a stale 1200?)`);
    const dropped = await waitUntil(() => worker.logs.some((l) => /after its deadline/.test(l.msg)), 5000);
    checks.that(dropped, 'the worker did not report dropping the late result');
    const leftovers = broker.redis ? await broker.redis.command(['KEYS', `${apiName}.slow:result:*`]) : [];
    checks.that(Array.isArray(leftovers) && leftovers.length === 0, `the late result was written anyway: ${JSON.stringify(leftovers)}`);
    checks.that(worker.running, 'the worker died');
    return {
      row: {
        transport: target.name,
        scenario: 'RPC: invalid arguments, unserved API, handler past its deadline',
        fired: calls,
        handled: asExpected,
        duplicates: 0,
        lost: calls - asExpected,
        notes: `validation errors came back, worker kept serving; ${unservedNote}; late result ${dropped ? 'dropped' : 'NOT dropped'}; ${since(started)}`,
      },
      violations: checks.violations,
    };
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await loose.bus.close({ timeoutMs: 2000 });
    await strict.bus.close({ timeoutMs: 2000 });
    await broker.stop();
  }
}
