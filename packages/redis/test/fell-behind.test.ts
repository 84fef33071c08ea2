/**
 * A listener group so far behind that Redis trimmed events it had not read (max_stream_length):
 * the listener says how many it lost, once, instead of silently missing them.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createBus, defineApi, event, silentLogger, Type } from '@lightbus/core';
import { eventually } from '@lightbus/transport-test-suite';
import { streamKey, transportPlugin } from '../src/index.js';
import { REDIS_URL, capturingLogger, cleanupKeys, rawRedis } from './helpers.js';

const id = randomBytes(5).toString('hex');
const apiName = `lbtest_${id}.behind`;
const api = defineApi({ name: apiName, events: { happened: event({ parameters: { n: Type.Number() } }) } });
const stream = streamKey(apiName, 'happened', 'per_api');

function config(redis: Record<string, unknown>) {
  const t = { redis: { url: REDIS_URL, ...redis } };
  return { service_name: `svc_${id}`, bus: { schema: { transport: t } }, apis: { default: { rpc_transport: t, result_transport: t, event_transport: t } } };
}

afterAll(async () => {
  await cleanupKeys(id);
  await rawRedis().quit();
});

describe('a Redis listener that fell behind the stream trimming', () => {
  it('warns once with the number of events trimmed before it read them', async () => {
    const version = String((await rawRedis().info('server')).match(/redis_version:(\d+)/)?.[1] ?? '0');
    if (Number(version) < 7) return; // XINFO GROUPS has no lag before Redis 7: nothing to check

    // The group exists and has read 10 events (Redis counts what it read), then its worker is away.
    const first = createBus({ apis: [api], config: config({ reclaim_interval: 60 }), logger: silentLogger, transports: [transportPlugin] });
    const early: number[] = [];
    first.registerApi(api, {});
    first.api(apiName).listen(['happened'], ({ n }) => void early.push(n as number), { listenerName: 'slow' });
    await first.start();
    for (let n = 0; n < 10; n++) await first.api(apiName).fire('happened', { n: -1 - n });
    await eventually(() => early.length === 10, 5000, 'the first 10 events');
    await first.close({ timeoutMs: 2000 });

    // 500 events while it is away, into a stream the firing side keeps to about 50 entries.
    const producer = createBus({ apis: [], config: config({ max_stream_length: 50 }), logger: silentLogger, transports: [transportPlugin] });
    producer.registerApi(api, {});
    for (let n = 0; n < 500; n++) await producer.api(apiName).fire('happened', { n });
    await producer.close({ timeoutMs: 2000 });
    const kept = await rawRedis().xlen(stream);
    expect(kept).toBeLessThan(500);

    const lines: string[] = [];
    const handled: number[] = [];
    const second = createBus({ apis: [api], config: config({ reclaim_interval: 0.2 }), logger: capturingLogger(lines), transports: [transportPlugin] });
    second.api(apiName).listen(['happened'], ({ n }) => void handled.push(n as number), { listenerName: 'slow' });
    await second.start();
    try {
      await eventually(() => lines.some((l) => l.includes('fell behind')), 5000, 'the warning');
      const warnings = lines.filter((l) => l.includes('fell behind'));
      // Seen at start-up, before the first read: the events removed less the 10 it had read.
      expect(warnings[0]).toContain(`: ${500 - kept} event(s) were trimmed by Redis before group svc_${id}-slow read them`);
      // It reads what was kept: the newest events.
      await eventually(() => handled.length === kept, 5000, 'the events kept');
      expect(Math.min(...handled)).toBe(500 - kept);
      expect(warnings[0]).toContain('max_stream_length');
      // Later reclaim passes do not repeat it: nothing more was lost.
      await new Promise((r) => setTimeout(r, 700));
      expect(lines.filter((l) => l.includes('fell behind'))).toHaveLength(1);
    } finally {
      await second.close({ timeoutMs: 2000 });
    }
  });
});
