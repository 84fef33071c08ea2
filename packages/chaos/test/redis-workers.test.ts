import { describe, expect, it } from 'vitest';
import { recordRow } from '../src/results.js';
import { sigtermUnderLoad, workerSigkill } from '../src/scenarios/redis-workers.js';


describe('chaos on Redis: workers', () => {
  it('a worker SIGKILLed mid-batch and restarted loses nothing', async () => {
    const result = await workerSigkill('restart');
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });

  it('a worker SIGKILLed mid-batch is taken over by a second worker of the same service', async () => {
    const result = await workerSigkill('takeover');
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });

  it('SIGTERM under load: in-flight handlers finish and are acknowledged; nothing lost or handled twice', async () => {
    const result = await sigtermUnderLoad();
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });
});
