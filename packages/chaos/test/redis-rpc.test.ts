import { afterAll, describe, expect, it } from 'vitest';
import { formatTable, type ScenarioRow } from '../src/tally.js';
import { rpcFailures } from '../src/scenarios/redis-rpc.js';

const rows: ScenarioRow[] = [];
afterAll(() => {
  if (rows.length > 0) console.log(`\n${formatTable(rows)}`);
});

describe('chaos on Redis: RPC failures', () => {
  it('invalid arguments get a validation error back, an unserved API times out, a late result is never delivered as fresh', async () => {
    const result = await rpcFailures();
    rows.push(result.row);
    expect(result.violations).toEqual([]);
  });
});
