import { afterAll, describe, expect, it } from 'vitest';
import { LightbusError } from '@lightbus/core';
import { startNats, testCertificates, type NatsInstance } from '@lightbus/test-infra';
import { capturingLogger, createChaosBus, uniqueApiName } from '../src/harness.js';
import { errorTexts, leaks } from '../src/secrets.js';
import { waitUntil } from '../src/worker-handle.js';

const closers: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
});

async function nats(options: Parameters<typeof startNats>[0]): Promise<NatsInstance> {
  const n = await startNats(options);
  closers.push(() => n.stop());
  return n;
}

/** One bus that serves, listens and calls: proves RPCs and events both work over the connection. */
async function roundTrip(transportOptions: Record<string, unknown>): Promise<{ echoed: unknown; seen: number[]; lines: string[] }> {
  const apiName = uniqueApiName('nats_sec');
  const logger = capturingLogger();
  const { bus, client } = createChaosBus({ apiName, transport: 'nats', transportOptions, logger });
  closers.push(() => bus.close({ timeoutMs: 1000 }));
  const seen: number[] = [];
  client.tick.listen(({ seq }) => void seen.push(seq), { listenerName: 'sec', since: 'all' });
  await bus.start();
  const echoed = await client.echo({ value: 'authenticated' });
  await client.tick.fire({ seq: 5 });
  await waitUntil(() => seen.includes(5), 10_000);
  return { echoed, seen, lines: logger.lines };
}

/** A bus with bad credentials: what the caller and the worker get, and everything logged. */
async function refused(transportOptions: Record<string, unknown>): Promise<string[]> {
  const apiName = uniqueApiName('nats_refused');
  const logger = capturingLogger();
  const { bus, client } = createChaosBus({ apiName, transport: 'nats', transportOptions, logger, register: false });
  closers.push(() => bus.close({ timeoutMs: 1000 }));
  const started = Date.now();
  const callError = await client.echo({ value: 'x' }, { timeout: 1 }).catch((e: unknown) => e);
  expect(Date.now() - started).toBeLessThan(5000);
  expect(LightbusError.isInstance(callError)).toBe(true);
  const worker = createChaosBus({ apiName, transport: 'nats', transportOptions, logger });
  closers.push(() => worker.bus.close({ timeoutMs: 1000 }));
  const startError = await Promise.race([worker.bus.start().then(() => 'started'), new Promise((r) => setTimeout(() => r('still starting after 10 s'), 10_000))]).catch((e: unknown) => e);
  expect(LightbusError.isInstance(startError)).toBe(true);
  return [...errorTexts(callError), ...errorTexts(startError), ...logger.lines];
}

describe('NATS user and password', () => {
  it('works with the right user and password, and never logs the password', async () => {
    const server = await nats({ jetstream: true, auth: true });
    const auth = server.auth as { user: string; pass: string };
    const { echoed, seen, lines } = await roundTrip({ servers: server.url, user: auth.user, pass: auth.pass });
    expect(echoed).toBe('authenticated');
    expect(seen).toContain(5);
    expect(leaks(lines, [auth.pass])).toEqual([]);
  });

  it('a wrong password is refused with a Lightbus error that says so, and no password shows', async () => {
    const server = await nats({ jetstream: true, auth: true });
    const auth = server.auth as { user: string; pass: string };
    const wrong = `wrong-${auth.pass.slice(0, 5)}-Qx7`;
    const texts = await refused({ servers: server.url, user: auth.user, pass: wrong });
    expect(leaks(texts, [wrong, auth.pass])).toEqual([]);
    expect(texts.join('\n')).toMatch(/authori[sz]ation|auth/i);
  });

  it('credentials inside the server URL are not printed either', async () => {
    const server = await nats({ jetstream: true, auth: true });
    const auth = server.auth as { user: string; pass: string };
    const wrong = `urlwrong${auth.pass.slice(0, 5)}Qx7`;
    const texts = await refused({ servers: `nats://${auth.user}:${wrong}@127.0.0.1:${server.port}` });
    expect(leaks(texts, [wrong, auth.pass])).toEqual([]);
  });
});

describe('NATS token', () => {
  it('works with the token, refuses a wrong one, and never prints either', async () => {
    const token = `lbtest-token-${Math.random().toString(36).slice(2)}`;
    const server = await nats({ jetstream: true, auth: { token } });
    const ok = await roundTrip({ servers: server.url, token });
    expect(ok.echoed).toBe('authenticated');
    expect(leaks(ok.lines, [token])).toEqual([]);
    const wrong = `${token}-wrong`;
    const texts = await refused({ servers: server.url, token: wrong });
    expect(leaks(texts, [wrong, token])).toEqual([]);
  });
});

describe('NATS over TLS (the harness CA)', () => {
  it('works when the CA file is given, and is refused (with a Lightbus error) when it is not', async () => {
    const server = await nats({ jetstream: true, tls: true });
    const ok = await roundTrip({ servers: server.url, tls: { ca: testCertificates().caFile } });
    expect(ok.echoed).toBe('authenticated');
    const texts = await refused({ servers: server.url, tls: { ca: testCertificates().otherCaFile } });
    expect(texts.join('\n')).toMatch(/certificate|tls|verify/i);
  });
});
