import { describe, expect, it } from 'vitest';
import { recordRow } from '../src/results.js';
import { rpcFailures } from '../src/scenarios/rpc.js';
import { selectedTargets } from '../src/targets.js';

describe.each(selectedTargets().map((t) => [t.name, t] as const))('chaos on %s: RPC failures', (_name, target) => {
  it('invalid arguments get a validation error back, an unserved API times out, a late result is never delivered as fresh', async () => {
    const result = await rpcFailures(target);
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });
});
