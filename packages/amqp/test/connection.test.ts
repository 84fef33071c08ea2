import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import amqp from 'amqplib';
import { ErrorCodes, type LogFields } from '@lightbus/core';
import { newContext } from '@lightbus/transport-test-suite';
import { AmqpEventTransport, AmqpRpcTransport } from '../src/index.js';
import { AMQP_URL, testPrefix } from './helpers.js';
import { TcpProxy } from './proxy.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function capturingLogger() {
  const lines: string[] = [];
  const log = (level: string) => (message: string, fields?: LogFields) => lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  return { lines, logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') } };
}

describe('connections', () => {
  it('tries the urls in order and uses the first that answers', async () => {
    const dead = await closedPort();
    const { lines, logger } = capturingLogger();
    const t = new AmqpEventTransport({ urls: [`amqp://guest:guest@127.0.0.1:${dead}`, AMQP_URL], queue_prefix: testPrefix() }, { ...newContext(), logger });
    cleanups.push(() => t.close());
    await t.open();
    expect(lines.some((l) => l.startsWith('warn') && l.includes(`127.0.0.1:${dead}`))).toBe(true);
    expect(lines.some((l) => l.startsWith('info Connected to RabbitMQ at amqp://guest@127.0.0.1:5672'))).toBe(true);
  });

  it('fails with a TransportError that names the broker but never the password', async () => {
    const { lines, logger } = capturingLogger();
    const t = new AmqpRpcTransport({ url: 'amqp://guest:not-the-password-42@127.0.0.1:5672', connect_timeout: 1.5 }, { ...newContext(), logger });
    cleanups.push(() => t.close());
    const error = await t.open().then(
      () => undefined,
      (e: unknown) => e as Error & { code: string },
    );
    expect(error).toMatchObject({ code: ErrorCodes.TRANSPORT_ERROR });
    expect(error!.message).toContain('amqp://guest@127.0.0.1:5672');
    expect(error!.message).toMatch(/ACCESS.REFUSED/);
    expect(error!.message).not.toContain('not-the-password-42');
    expect(lines.join('\n')).not.toContain('not-the-password-42');
  });

  it('shares one connection among transports with the same options and closes it with the last', async () => {
    const proxy = await TcpProxy.start();
    cleanups.push(() => proxy.close());
    const ctx = newContext();
    const options = { url: proxy.url, queue_prefix: testPrefix() };
    const a = new AmqpEventTransport(options, ctx);
    const b = new AmqpRpcTransport({ ...options, prefetch: 3 }, ctx);
    await Promise.all([a.open(), b.open()]);
    expect(proxy.accepted).toBe(1);
    await a.close();
    await b.close();
    const c = new AmqpEventTransport(options, ctx);
    cleanups.push(() => c.close());
    await c.open();
    expect(proxy.accepted).toBe(2); // the first connection closed with its last transport
  });

  it('uses a connection passed in, and leaves it open', async () => {
    const model = await amqp.connect(AMQP_URL);
    cleanups.push(() => model.close());
    let closed = false;
    model.on('close', () => (closed = true));
    const ctx = newContext();
    const t = new AmqpRpcTransport({ connection: model, queue_prefix: testPrefix() }, ctx);
    await t.open();
    await t.close();
    expect(closed).toBe(false);
    const ch = await model.createChannel();
    await ch.close();
  });

  it('says clearly that it cannot reopen a given connection that closed', async () => {
    const model = await amqp.connect(AMQP_URL);
    const ctx = newContext();
    const t = new AmqpRpcTransport({ connection: model, queue_prefix: testPrefix() }, ctx);
    cleanups.push(() => t.close());
    await t.open();
    await model.close();
    const call = { id: 'c1', apiName: ctx.apis[0], procedureName: 'p', kwargs: {}, returnPath: 'x://y', deadline: Date.now() + 1000 };
    await expect(t.call(call, { timeoutMs: 1000 })).rejects.toMatchObject({
      code: ErrorCodes.TRANSPORT_ERROR,
      message: expect.stringContaining('cannot reopen a connection it did not open') as unknown,
    });
  });
});
