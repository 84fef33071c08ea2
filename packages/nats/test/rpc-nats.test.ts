import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, newMessageId, silentLogger, type LogFields, type Logger, type RpcMessage } from '@lightbus/core';
import { eventually, newContext } from '@lightbus/transport-test-suite';
import { NatsResultTransport } from '../src/result.js';
import { NatsRpcTransport } from '../src/rpc.js';
import { rpcSubject, resolveOptions } from '../src/options.js';
import { adminConnection, closeAdmin, isolatedOptions } from './helpers.js';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});
afterAll(closeAdmin);

function recordingLogger(lines: string[]): Logger {
  const rec = (m: string, f?: LogFields) => lines.push(m + (f ? ' ' + JSON.stringify(f) : ''));
  return { debug: rec, info: rec, warn: rec, error: rec };
}

async function pair(id: string, logger: Logger = silentLogger) {
  const ctx = { ...newContext('p', id), logger };
  const rpc = new NatsRpcTransport(isolatedOptions(id), ctx);
  const result = new NatsResultTransport(isolatedOptions(id), ctx);
  await rpc.open();
  await result.open();
  open.push(rpc, result);
  return { ctx, rpc, result };
}

describe('nats rpc specifics', () => {
  it('fails a call at once when no worker listens (no responders), instead of waiting the timeout', async () => {
    const { ctx, rpc, result } = await pair(newContext().id);
    const id = newMessageId();
    const pending = await result.prepare({ id, apiName: ctx.apis[0], procedureName: 'p' });
    await rpc.call({ id, apiName: ctx.apis[0], procedureName: 'p', kwargs: {}, returnPath: pending.returnPath, deadline: Date.now() + 5000 }, { timeoutMs: 5000 });
    const started = Date.now();
    const error = await pending.wait({ timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.TRANSPORT_ERROR, retryable: true });
    expect((error as Error).message).toContain('No worker is serving');
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('skips a malformed call with a logged reason and keeps consuming', async () => {
    const lines: string[] = [];
    const { ctx, rpc } = await pair(newContext().id, recordingLogger(lines));
    const got: RpcMessage[] = [];
    const controller = new AbortController();
    const loop = (async () => {
      for await (const m of rpc.consume([ctx.apis[0]], { signal: controller.signal })) got.push(m);
    })();
    const admin = await adminConnection();
    const subject = rpcSubject(resolveOptions(isolatedOptions(ctx.id)), ctx.apis[0]);
    await new Promise((r) => setTimeout(r, 100));
    admin.publish(subject, new TextEncoder().encode('{not json'));
    admin.publish(subject, new TextEncoder().encode(JSON.stringify({ metadata: { id: 'x' }, kwargs: {} })));
    await rpc.call({ id: 'good', apiName: ctx.apis[0], procedureName: 'p', kwargs: { a: 1 }, returnPath: 'test://x' }, { timeoutMs: 5000 });
    await eventually(() => got.length === 1, 5000, 'the good call');
    expect(got[0]!.id).toBe('good');
    expect(lines.filter((l) => l.includes('Dropped a call')).length).toBe(2);
    expect(lines.join('\n')).toContain('not UTF-8 JSON');
    expect(lines.join('\n')).toContain('"api_name" is missing');
    controller.abort();
    await loop;
  });

  it('hands calls received but not started back to another worker of the queue group when a consumer stops', async () => {
    const { ctx, rpc } = await pair(newContext().id);
    const other = new NatsRpcTransport(isolatedOptions(ctx.id, { name: 'second worker' }), { ...ctx, processName: 'other' });
    await other.open();
    open.push(other);
    const api = ctx.apis[0];
    // The first worker takes one call and then stops, leaving the rest unstarted.
    const c1 = new AbortController();
    const first: RpcMessage[] = [];
    const iterator = rpc.consume([api], { signal: c1.signal })[Symbol.asyncIterator]();
    const firstNext = iterator.next();
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 10; i++) await rpc.call({ id: `c${i}`, apiName: api, procedureName: 'p', kwargs: { i }, returnPath: 'test://x' }, { timeoutMs: 5000 });
    first.push((await firstNext).value as RpcMessage);
    await new Promise((r) => setTimeout(r, 100));
    // Now a second worker joins, and the first stops.
    const second: RpcMessage[] = [];
    const c2 = new AbortController();
    const loop2 = (async () => {
      for await (const m of other.consume([api], { signal: c2.signal })) second.push(m);
    })();
    await new Promise((r) => setTimeout(r, 100));
    c1.abort();
    await iterator.return?.();
    await eventually(() => first.length + second.length === 10, 5000, 'every call served once');
    expect(new Set([...first, ...second].map((m) => m.id)).size).toBe(10);
    c2.abort();
    await loop2;
  });
});

describe('a pooled connection closed for good', () => {
  class ProbedRpc extends NatsRpcTransport {
    /** The connection, for the test to close it. */
    nc() {
      return this.connection();
    }
  }

  it('is replaced by a fresh one on next use, for calls, consumers and results', async () => {
    const ctx = newContext();
    const options = isolatedOptions(ctx.id, { name: `pooled ${ctx.id}` });
    const rpc = new ProbedRpc(options, ctx);
    const results = new NatsResultTransport(options, ctx);
    open.push(rpc, results);
    await rpc.open();
    await results.open();
    await (await rpc.nc()).close(); // as if the client had given up reconnecting
    const controller = new AbortController();
    const loop = (async () => {
      for await (const m of rpc.consume([ctx.apis[0]], { signal: controller.signal })) {
        await results.send(m.returnPath, { id: newMessageId(), rpcMessageId: m.id, error: false, result: 'ok' }, { rpc: m });
      }
    })();
    const pending = await results.prepare({ id: 'x1', apiName: ctx.apis[0], procedureName: 'p' });
    await new Promise((r) => setTimeout(r, 100));
    await rpc.call({ id: 'x1', apiName: ctx.apis[0], procedureName: 'p', kwargs: {}, returnPath: pending.returnPath }, { timeoutMs: 3000 });
    await expect(pending.wait({ timeoutMs: 3000 })).resolves.toMatchObject({ result: 'ok' });
    controller.abort();
    await loop;
  });
});
