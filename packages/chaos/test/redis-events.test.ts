import { describe, expect, it } from 'vitest';
import { recordRow } from '../src/results.js';
import { fuzzStream, poisonEvent } from '../src/scenarios/redis-events.js';


describe('chaos on Redis: bad input', () => {
  it('a poison event is dead-lettered after the delivery limit with its error, the rest flows, and it can be replayed', async () => {
    const result = await poisonEvent();
    recordRow(result.row);
    expect(result.violations).toEqual([]);
  });

  it('10,000 hostile raw entries: the worker stays up, refuses each with a reason, prototypes stay clean, valid events all arrive', async () => {
    const result = await fuzzStream();
    recordRow(result.row);
    console.log(result.details);
    expect(result.violations).toEqual([]);
  });
});
