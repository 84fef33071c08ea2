import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LightbusError } from '@lightbus/core';
import { createRabbitVhost, type RabbitVhost } from '@lightbus/test-infra';
import { capturingLogger, createChaosBus, uniqueApiName } from '../src/harness.js';
import { errorTexts, leaks } from '../src/secrets.js';
import { waitUntil } from '../src/worker-handle.js';

const closers: Array<() => Promise<unknown>> = [];
let vhost: RabbitVhost;
let other: RabbitVhost;

beforeAll(async () => {
  vhost = await createRabbitVhost();
  other = await createRabbitVhost();
  closers.push(() => vhost.delete(), () => other.delete());
}, 60_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
}, 60_000);

async function refusedTexts(transportOptions: Record<string, unknown>): Promise<string[]> {
  const apiName = uniqueApiName('amqp_refused');
  const logger = capturingLogger();
  const { bus, client } = createChaosBus({ apiName, transport: 'amqp', transportOptions, logger, register: false });
  closers.push(() => bus.close({ timeoutMs: 1000 }));
  const started = Date.now();
  const callError = await client.echo({ value: 'x' }, { timeout: 2 }).catch((e: unknown) => e);
  expect(Date.now() - started).toBeLessThan(6000);
  expect(LightbusError.isInstance(callError)).toBe(true);
  return [...errorTexts(callError), ...logger.lines];
}

describe('RabbitMQ credentials and vhost', () => {
  it('works with the vhost user, in its own vhost, and never logs the password', async () => {
    const apiName = uniqueApiName('amqp_sec');
    const logger = capturingLogger();
    const { bus, client } = createChaosBus({ apiName, transport: 'amqp', transportOptions: { url: vhost.url }, logger });
    closers.push(() => bus.close({ timeoutMs: 1000 }));
    const seen: number[] = [];
    client.tick.listen(({ seq }) => void seen.push(seq), { listenerName: 'sec' });
    await bus.start();
    expect(await client.echo({ value: 'authenticated' })).toBe('authenticated');
    // The listener's queue may be declared just after start(): fire until it arrives.
    expect(
      await waitUntil(async () => {
        await client.tick.fire({ seq: 9 });
        return waitUntil(() => seen.includes(9), 500);
      }, 15_000),
    ).toBe(true);
    expect(leaks([...logger.lines, JSON.stringify(bus.describe())], [vhost.password])).toEqual([]);
  });

  it('a wrong password is refused with a Lightbus error; neither password shows in errors or logs', async () => {
    const wrong = `wrong-${vhost.password.slice(0, 5)}-Kp2`;
    const texts = await refusedTexts({ url: vhost.urlWithoutCredentials, username: vhost.username, password: wrong });
    expect(leaks(texts, [wrong, vhost.password])).toEqual([]);
    const inUrl = await refusedTexts({ url: vhost.url.replace(`:${vhost.password}@`, `:${wrong}@`) });
    expect(leaks(inUrl, [wrong, vhost.password])).toEqual([]);
  });

  it("a user cannot reach another test's vhost", async () => {
    const texts = await refusedTexts({ url: vhost.urlWithoutCredentials, username: other.username, password: other.password });
    expect(leaks(texts, [other.password])).toEqual([]);
    expect(texts.join('\n')).toMatch(/access|refused|not allowed|permission|vhost/i);
  });
});
