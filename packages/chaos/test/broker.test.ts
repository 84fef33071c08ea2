import { describe, expect, it } from 'vitest';
import { recordRow } from '../src/results.js';
import { brokerPaused, brokerRestart } from '../src/scenarios/broker.js';
import { selectedTargets } from '../src/targets.js';

describe.each(selectedTargets().filter((t) => t.privateServer).map((t) => [t.name, t] as const))('chaos on %s: the broker', (_name, target) => {
  it('restarted under load with its data kept: clients reconnect, nothing kept is lost', async () => {
    const result = await brokerRestart(target, { persistent: true });
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });

  it('restarted with its events gone: what vanished is recreated without a hot loop, later events flow', async () => {
    const result = await brokerRestart(target, { persistent: false });
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });

  it('paused (SIGSTOP): RPCs time out at their deadline, nothing leaks, recovery after SIGCONT', async () => {
    const result = await brokerPaused(target);
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });
});
