import { afterAll, describe, expect, it } from 'vitest';
import { formatTable, type ScenarioRow } from '../src/tally.js';
import { sigtermUnderLoad, workerSigkill } from '../src/scenarios/redis-workers.js';

const rows: ScenarioRow[] = [];
afterAll(() => {
  if (rows.length > 0) console.log(`\n${formatTable(rows)}`);
});

describe('chaos on Redis: workers', () => {
  it('a worker SIGKILLed mid-batch and restarted loses nothing', async () => {
    const result = await workerSigkill('restart');
    rows.push(result.row);
    expect(result.violations).toEqual([]);
  });

  it('a worker SIGKILLed mid-batch is taken over by a second worker of the same service', async () => {
    const result = await workerSigkill('takeover');
    rows.push(result.row);
    expect(result.violations).toEqual([]);
  });

  it('SIGTERM under load: in-flight handlers finish and are acknowledged; nothing lost or handled twice', async () => {
    const result = await sigtermUnderLoad();
    rows.push(result.row);
    expect(result.violations).toEqual([]);
  });
});
