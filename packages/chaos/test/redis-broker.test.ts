import { afterAll, describe, expect, it } from 'vitest';
import { formatTable, type ScenarioRow } from '../src/tally.js';
import { brokerPaused, brokerRestart } from '../src/scenarios/redis-broker.js';

const rows: ScenarioRow[] = [];
afterAll(() => {
  if (rows.length > 0) console.log(`\n${formatTable(rows)}`);
});

describe('chaos on Redis: the broker', () => {
  it('restarted under load with appendonly: clients reconnect, nothing kept is lost', async () => {
    const result = await brokerRestart({ persistent: true });
    rows.push(result.row);
    expect(result.violations).toEqual([]);
  });

  it('restarted with its data gone: the group is recreated without a hot loop, later events flow', async () => {
    const result = await brokerRestart({ persistent: false });
    rows.push(result.row);
    expect(result.violations).toEqual([]);
  });

  it('paused (SIGSTOP): RPCs time out at their deadline, nothing leaks, recovery after SIGCONT', async () => {
    const result = await brokerPaused();
    rows.push(result.row);
    expect(result.violations).toEqual([]);
  });
});
