import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, newMessageId, type ResultTransport, type RpcMessage, type RpcTransport, type SchemaTransport } from '@lightbus/core';
import { eventually, newContext, type SuiteContext } from './context.js';

/** Options shared by the RPC, result and schema suites. */
export interface RoleSuiteOptions<T> {
  /** Shown in the test names. */
  name: string;
  /** Builds a transport; called once per simulated process. */
  create(context: SuiteContext): T | Promise<T>;
  /** Removes everything a test wrote. */
  cleanup?(context: SuiteContext): Promise<void>;
  /** Per-test timeout in ms. Default 20000. */
  timeoutMs?: number;
}

function useTransports<T extends { close(): Promise<void>; open?(): Promise<void> }>(options: RoleSuiteOptions<T>) {
  const open: T[] = [];
  const contexts: SuiteContext[] = [];
  const controllers: AbortController[] = [];
  afterEach(async () => {
    for (const c of controllers.splice(0)) c.abort();
    await Promise.allSettled(open.splice(0).map((t) => t.close()));
    for (const c of contexts.splice(0)) await options.cleanup?.(c);
  });
  return {
    ctx() {
      const c = newContext();
      contexts.push(c);
      return c;
    },
    async make(context: SuiteContext): Promise<T> {
      const t = await options.create(context);
      if (t.open) await t.open();
      open.push(t);
      return t;
    },
    controller() {
      const c = new AbortController();
      controllers.push(c);
      return c;
    },
  };
}

function callOf(apiName: string, procedureName: string, kwargs: Record<string, unknown>, timeoutMs = 5000): RpcMessage {
  const id = newMessageId();
  return { id, apiName, procedureName, kwargs, returnPath: `test://${id}`, deadline: Date.now() + timeoutMs };
}

async function collectCalls(transport: RpcTransport, apis: string[], signal: AbortSignal, into: RpcMessage[]): Promise<void> {
  for await (const m of transport.consume(apis, { signal })) into.push(m);
}

/** The RPC-transport conformance suite. */
export function describeRpcTransport(options: RoleSuiteOptions<RpcTransport>): void {
  const timeout = options.timeoutMs ?? 20_000;
  describe(`${options.name}: rpc transport conformance`, () => {
    const h = useTransports(options);

    it('delivers a call intact to a consumer of its API', { timeout }, async () => {
      const context = h.ctx();
      const caller = await h.make(context);
      const server = await h.make({ ...context, processName: 'server' });
      const got: RpcMessage[] = [];
      const c = h.controller();
      const loop = collectCalls(server, [context.apis[0]], c.signal, got);
      const sent = callOf(context.apis[0], 'check_password', { username: 'admin', nested: { ok: [true, null, 1.5, 'é'] } });
      await caller.call(sent, { timeoutMs: 5000 });
      await eventually(() => got.length === 1, 5000, 'the call');
      expect(got[0]).toMatchObject({ id: sent.id, apiName: sent.apiName, procedureName: sent.procedureName, kwargs: sent.kwargs, returnPath: sent.returnPath });
      c.abort();
      await loop;
    });

    it('serves several APIs from one consume loop', { timeout }, async () => {
      const context = h.ctx();
      const t = await h.make(context);
      const got: RpcMessage[] = [];
      const c = h.controller();
      const loop = collectCalls(t, [...context.apis], c.signal, got);
      await t.call(callOf(context.apis[0], 'a', {}), { timeoutMs: 5000 });
      await t.call(callOf(context.apis[1], 'b', {}), { timeoutMs: 5000 });
      await eventually(() => got.length === 2, 5000, 'both calls');
      c.abort();
      await loop;
    });

    it('delivers each call at most once across consumers', { timeout }, async () => {
      const context = h.ctx();
      const caller = await h.make(context);
      const s1 = await h.make({ ...context, processName: 's1' });
      const s2 = await h.make({ ...context, processName: 's2' });
      const got1: RpcMessage[] = [];
      const got2: RpcMessage[] = [];
      const c = h.controller();
      const loops = [collectCalls(s1, [context.apis[0]], c.signal, got1), collectCalls(s2, [context.apis[0]], c.signal, got2)];
      await Promise.all(Array.from({ length: 30 }, (_, i) => caller.call(callOf(context.apis[0], 'p', { i }), { timeoutMs: 5000 })));
      await eventually(() => got1.length + got2.length >= 30, 5000, '30 calls');
      await new Promise((r) => setTimeout(r, 300));
      const ids = [...got1, ...got2].map((m) => m.id);
      expect(ids.length).toBe(30);
      expect(new Set(ids).size).toBe(30);
      c.abort();
      await Promise.all(loops);
    });

    it('does not deliver a call whose time to live has passed', { timeout }, async (t) => {
      const context = h.ctx();
      const caller = await h.make(context);
      if (!caller.capabilities.deadlines) t.skip();
      await caller.call(callOf(context.apis[0], 'p', { late: true }, 1000), { timeoutMs: 1000 });
      await new Promise((r) => setTimeout(r, 1600));
      const server = await h.make({ ...context, processName: 'server' });
      const got: RpcMessage[] = [];
      const c = h.controller();
      const loop = collectCalls(server, [context.apis[0]], c.signal, got);
      await caller.call(callOf(context.apis[0], 'p', { late: false }), { timeoutMs: 5000 });
      await eventually(() => got.length >= 1, 5000, 'the fresh call');
      await new Promise((r) => setTimeout(r, 200));
      expect(got.map((m) => m.kwargs['late'])).toEqual([false]);
      c.abort();
      await loop;
    });

    it('ends consume promptly when the signal aborts', { timeout }, async () => {
      const context = h.ctx();
      const t = await h.make(context);
      const c = new AbortController();
      const loop = collectCalls(t, [context.apis[0]], c.signal, []);
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      c.abort();
      await loop;
      expect(Date.now() - started).toBeLessThan(3000);
    });
  });
}

/** The result-transport conformance suite. */
export function describeResultTransport(options: RoleSuiteOptions<ResultTransport>): void {
  const timeout = options.timeoutMs ?? 20_000;
  describe(`${options.name}: result transport conformance`, () => {
    const h = useTransports(options);
    const rpcOf = (context: SuiteContext) => ({ id: newMessageId(), apiName: context.apis[0], procedureName: 'proc' });

    it('carries a result from the worker to the waiting caller', { timeout }, async () => {
      const context = h.ctx();
      const caller = await h.make(context);
      const worker = await h.make({ ...context, processName: 'worker' });
      const rpc = rpcOf(context);
      const pending = await caller.prepare(rpc);
      expect(caller.capabilities.schemes).toContain(pending.returnPath.split('://')[0]);
      const waiting = pending.wait({ timeoutMs: 5000 });
      const result = { id: newMessageId(), rpcMessageId: rpc.id, error: false, result: { ok: [1, 'é', null] } };
      await worker.send(pending.returnPath, result, { rpc: { ...rpc, kwargs: {}, returnPath: pending.returnPath } });
      await expect(waiting).resolves.toEqual(result);
      await pending.cancel();
    });

    it('keeps a result that arrives before the caller waits', { timeout }, async () => {
      const context = h.ctx();
      const caller = await h.make(context);
      const worker = await h.make({ ...context, processName: 'worker' });
      const rpc = rpcOf(context);
      const pending = await caller.prepare(rpc);
      const result = { id: newMessageId(), rpcMessageId: rpc.id, error: true, result: "Error('boom')", trace: 'Error: boom\n    at x' };
      await worker.send(pending.returnPath, result, { rpc: { ...rpc, kwargs: {}, returnPath: pending.returnPath } });
      await expect(pending.wait({ timeoutMs: 5000 })).resolves.toEqual(result);
      await pending.cancel();
    });

    it('times out with LB_RPC_TIMEOUT when no result comes', { timeout }, async () => {
      const context = h.ctx();
      const caller = await h.make(context);
      const pending = await caller.prepare(rpcOf(context));
      const started = Date.now();
      await expect(pending.wait({ timeoutMs: 300 })).rejects.toMatchObject({ code: ErrorCodes.RPC_TIMEOUT });
      expect(Date.now() - started).toBeLessThan(2500);
      await pending.cancel();
    });

    it('keeps concurrent results apart', { timeout }, async () => {
      const context = h.ctx();
      const caller = await h.make(context);
      const worker = await h.make({ ...context, processName: 'worker' });
      const pendings = await Promise.all(Array.from({ length: 20 }, () => caller.prepare(rpcOf(context))));
      const waits = pendings.map((p) => p.wait({ timeoutMs: 5000 }));
      await Promise.all(
        pendings.map((p, i) =>
          worker.send(p.returnPath, { id: newMessageId(), rpcMessageId: String(i), error: false, result: i }, {
            rpc: { id: String(i), apiName: context.apis[0], procedureName: 'proc', kwargs: {}, returnPath: p.returnPath },
          }),
        ),
      );
      expect((await Promise.all(waits)).map((r) => r.result)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      await Promise.all(pendings.map((p) => p.cancel()));
    });
  });
}

/** The schema-transport conformance suite. */
export function describeSchemaTransport(options: RoleSuiteOptions<SchemaTransport>): void {
  const timeout = options.timeoutMs ?? 20_000;
  describe(`${options.name}: schema transport conformance`, () => {
    const h = useTransports(options);
    const schema = {
      events: { user_registered: { parameters: { $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', properties: { username: { type: 'string' } } } } },
      rpcs: {},
    };

    it('stores schemas another process loads', { timeout }, async () => {
      const context = h.ctx();
      const a = await h.make(context);
      const b = await h.make({ ...context, processName: 'other' });
      await a.store(context.apis[0], schema, 60);
      await a.store(context.apis[1], { events: {}, rpcs: {} }, 60);
      const loaded = await b.load();
      expect(loaded[context.apis[0]]).toEqual(schema);
      expect(loaded[context.apis[1]]).toEqual({ events: {}, rpcs: {} });
    });

    it('forgets a schema after its ttl', { timeout }, async () => {
      const context = h.ctx();
      const a = await h.make(context);
      await a.store(context.apis[0], schema, 1);
      expect((await a.load())[context.apis[0]]).toEqual(schema);
      await eventually(async () => !(context.apis[0] in (await a.load())), 4000, 'the schema to expire');
    });
  });
}
