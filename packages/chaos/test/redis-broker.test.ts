import { describe, expect, it } from 'vitest';
import { recordRow } from '../src/results.js';
import { brokerPaused, brokerRestart } from '../src/scenarios/redis-broker.js';


describe('chaos on Redis: the broker', () => {
  it('restarted under load with appendonly: clients reconnect, nothing kept is lost', async () => {
    const result = await brokerRestart({ persistent: true });
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });

  it('restarted with its data gone: the group is recreated without a hot loop, later events flow', async () => {
    const result = await brokerRestart({ persistent: false });
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });

  it('paused (SIGSTOP): RPCs time out at their deadline, nothing leaks, recovery after SIGCONT', async () => {
    const result = await brokerPaused();
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });
});
