import { describe, expect, it } from 'vitest';
import { recordRow } from '../src/results.js';
import { rpcFailures } from '../src/scenarios/redis-rpc.js';


describe('chaos on Redis: RPC failures', () => {
  it('invalid arguments get a validation error back, an unserved API times out, a late result is never delivered as fresh', async () => {
    const result = await rpcFailures();
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });
});
