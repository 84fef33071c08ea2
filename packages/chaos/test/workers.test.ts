import { describe, expect, it } from 'vitest';
import { recordRow } from '../src/results.js';
import { sigtermUnderLoad, workerSigkill } from '../src/scenarios/workers.js';
import { selectedTargets } from '../src/targets.js';

describe.each(selectedTargets().map((t) => [t.name, t] as const))('chaos on %s: workers', (_name, target) => {
  it('a worker SIGKILLed mid-batch and restarted loses nothing', async () => {
    const result = await workerSigkill(target, 'restart');
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });

  it('a worker SIGKILLed mid-batch is taken over by a second worker of the same service', async () => {
    const result = await workerSigkill(target, 'takeover');
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });

  it('SIGTERM under load: in-flight handlers finish and are acknowledged; nothing lost or handled twice', async () => {
    const result = await sigtermUnderLoad(target);
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });
});
