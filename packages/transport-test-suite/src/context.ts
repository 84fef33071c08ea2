import { randomBytes } from 'node:crypto';
import { silentLogger, type TransportContext } from '@lightbus/core';

/** What the suite hands the transport factory for each test. */
export interface SuiteContext extends TransportContext {
  /** A short random id, unique to this test. Use it to prefix keys, subjects and queues. */
  readonly id: string;
  /** API names used by this test (unique to it): `lbtest_{id}.a`, `lbtest_{id}.b`. */
  readonly apis: readonly [string, string];
}

/** Builds a fresh context for one test. */
export function newContext(processName = 'proc1', id = randomBytes(5).toString('hex')): SuiteContext {
  return {
    id,
    apis: [`lbtest_${id}.a`, `lbtest_${id}.b`],
    serviceName: `svc_${id}`,
    processName,
    logger: silentLogger,
  };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last instanceof Error ? last.message : JSON.stringify(last)}` : ''}`);
}
