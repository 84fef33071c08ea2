import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { newMessageId, silentLogger, type EventMessage, type LogFields, type Logger, type ReceivedEvent } from '@lightbus/core';
import { Collector, eventually, newContext, type SuiteContext } from '@lightbus/transport-test-suite';
import { DEAD_LETTER_HEADERS, NatsEventTransport } from '../src/events.js';
import { deadStreamName, eventSubject, resolveOptions, type NatsTransportOptions } from '../src/options.js';
import { encodeEvent } from '../src/wire.js';
import { connect } from 'nats';
import { NATS_URL, RUN_PREFIX, adminConnection, closeAdmin, deleteStreams, isolatedOptions, readStream } from './helpers.js';

const open: NatsEventTransport[] = [];
const collectors: Collector[] = [];
const contexts: SuiteContext[] = [];
afterEach(async () => {
  await Promise.allSettled(collectors.splice(0).map((c) => c.stop()));
  await Promise.allSettled(open.splice(0).map((t) => t.close()));
  for (const c of contexts.splice(0)) await deleteStreams(`${RUN_PREFIX}_${c.id}_`);
});
afterAll(closeAdmin);

function ctx(logger: Logger = silentLogger): SuiteContext {
  const c = { ...newContext(), logger };
  contexts.push(c);
  return c;
}
async function make(context: SuiteContext, extra: NatsTransportOptions = {}): Promise<NatsEventTransport> {
  const t = new NatsEventTransport(isolatedOptions(context.id, extra), context);
  await t.open();
  open.push(t);
  return t;
}
function collect(...args: ConstructorParameters<typeof Collector>): Collector {
  const c = new Collector(...args);
  collectors.push(c);
  return c;
}
const eventOf = (apiName: string, eventName: string, kwargs: Record<string, unknown>): EventMessage => ({ id: newMessageId(), apiName, eventName, version: 1, kwargs });
const settle = () => new Promise((r) => setTimeout(r, 300));
function recorder(lines: string[]): Logger {
  const rec = (m: string, f?: LogFields) => lines.push(m + (f ? ' ' + JSON.stringify(f) : ''));
  return { debug: rec, info: rec, warn: rec, error: rec };
}

describe('nats events specifics', () => {
  it('warns when the stream dropped events before the listener group got them (max_stream_length)', async () => {
    const lines: string[] = [];
    const context = ctx();
    const limits = { max_stream_length: 50 };
    const [api] = context.apis;
    const sub = { listenerName: 'slow', events: [{ apiName: api, eventName: 'e' }] };
    // The group gets 10 events, then its worker is away while 500 more are sent.
    const first = await make(context, limits);
    const early = collect(first, sub);
    await settle();
    for (let n = 0; n < 10; n++) await first.send(eventOf(api, 'e', { n }));
    await eventually(() => early.received.length === 10, 5000, 'the first 10 events');
    await early.stop();
    const producer = await make(context, limits);
    for (let n = 10; n < 510; n++) await producer.send(eventOf(api, 'e', { n }));
    // It comes back: the stream kept the newest 50, so 450 never reach it, and it says so.
    const again = await make({ ...context, logger: recorder(lines), processName: 'proc2' }, limits);
    const late = collect(again, sub);
    await eventually(() => late.received.length === 50, 5000, 'the 50 events kept');
    expect(late.received.map((e) => e.message.kwargs['n'])).toEqual(Array.from({ length: 50 }, (_, i) => 460 + i));
    const warnings = lines.filter((l) => l.includes('fell behind'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('up to 450 event(s) were dropped');
    expect(warnings[0]).toContain('max_stream_length');
  });

  it('dead-letters malformed entries with the reason and keeps consuming', async () => {
    const lines: string[] = [];
    const context = ctx(recorder(lines));
    const t = await make(context);
    const [api] = context.apis;
    const c = collect(t, { listenerName: 'robust', events: [{ apiName: api, eventName: 'e' }] });
    await settle();
    const o = resolveOptions(isolatedOptions(context.id));
    const js = (await adminConnection()).jetstream();
    const subject = eventSubject(o, api, 'e');
    await js.publish(subject, new TextEncoder().encode('{not json'));
    await js.publish(subject, new TextEncoder().encode(JSON.stringify({ metadata: { id: 'x', api_name: api, event_name: 'e' }, kwargs: {} })));
    await js.publish(subject, encodeEvent(eventOf(api, 'other', {}))); // names another event than its subject
    await t.send(eventOf(api, 'e', { good: true }));
    await eventually(() => c.received.length === 1, 5000, 'the good event');
    expect(c.received[0]!.message.kwargs).toEqual({ good: true });
    const dead = (await eventually(async () => {
      const d = await readStream(deadStreamName(o, api));
      return d.length === 3 ? d : null;
    }, 5000, 'three dead letters'))!;
    const errors = dead.map((d) => d.headers[DEAD_LETTER_HEADERS.error]);
    expect(errors[0]).toContain('not UTF-8 JSON');
    expect(errors[1]).toContain('"version"');
    expect(errors[2]).toContain('was published to');
    expect(dead.every((d) => d.headers[DEAD_LETTER_HEADERS.listener] === `${context.serviceName}-robust`)).toBe(true);
    expect(new TextDecoder().decode(dead[0]!.data)).toBe('{not json'); // stored as received
    expect(lines.filter((l) => l.includes('malformed entry')).length).toBe(3);
  });

  it('loses nothing when a consumer is stopped mid-batch without settling, and another takes over', async () => {
    const context = ctx();
    const first = await make(context);
    const [api] = context.apis;
    const sub = { listenerName: 'handover', events: [{ apiName: api, eventName: 'e' }], batchSize: 5 };
    const acked = new Set<number>();
    // The first consumer acknowledges every third event and leaves the others hanging.
    let seen = 0;
    const a = collect(first, sub, async (e: ReceivedEvent) => {
      if (seen++ % 3 === 0) {
        await e.ack();
        acked.add(e.message.kwargs['i'] as number);
      }
    });
    await settle();
    for (let i = 0; i < 30; i++) await first.send(eventOf(api, 'e', { i }));
    await eventually(() => a.received.length >= 5, 5000, 'a first batch');
    await a.stop();
    // A second process (its own connection) takes over.
    const second = await make({ ...context, processName: 'proc2' }, { name: 'second process' });
    collect(second, sub, async (e: ReceivedEvent) => {
      await e.ack();
      acked.add(e.message.kwargs['i'] as number);
    });
    await eventually(() => acked.size === 30, 10_000, 'all 30 events acknowledged');
  });

  it('loses nothing when the connection of a consumer dies mid-batch (a crashed process)', async () => {
    const context = ctx();
    const sender = await make(context);
    const [api] = context.apis;
    const sub = { listenerName: 'crash', events: [{ apiName: api, eventName: 'e' }], batchSize: 10 };
    // The doomed process has its own connection, which we cut without any goodbye.
    const doomedConnection = await connect({ servers: NATS_URL, noAsyncTraces: true, name: 'doomed' });
    const doomed = await make({ ...context, processName: 'doomed' }, { connection: doomedConnection });
    const acked = new Set<number>();
    let handled = 0;
    const a = new Collector(doomed, sub, async (e: ReceivedEvent) => {
      if (handled++ < 3) {
        await e.ack();
        acked.add(e.message.kwargs['i'] as number);
      }
    });
    await settle();
    for (let i = 0; i < 25; i++) await sender.send(eventOf(api, 'e', { i }));
    await eventually(() => a.received.length >= 10, 5000, 'a first batch in the doomed process');
    await doomedConnection.close();
    a.done.catch(() => undefined);
    const survivor = await make({ ...context, processName: 'survivor' }, { name: 'survivor' });
    collect(survivor, sub, async (e: ReceivedEvent) => {
      await e.ack();
      acked.add(e.message.kwargs['i'] as number);
    });
    await eventually(() => acked.size === 25, 10_000, 'all 25 events acknowledged');
  });

  it('dead-letters an event delivered more than max_deliveries times without being settled', async () => {
    const context = ctx();
    const t = await make(context, { max_deliveries: 2 });
    const [api] = context.apis;
    const c = collect(t, { listenerName: 'limit', events: [{ apiName: api, eventName: 'e' }] }, (e) => e.nack({ delayMs: 0, error: new Error('again') }));
    await settle();
    await t.send(eventOf(api, 'e', { n: 1 }));
    const o = resolveOptions(isolatedOptions(context.id));
    const dead = (await eventually(async () => {
      const d = await readStream(deadStreamName(o, api));
      return d.length === 1 ? d : null;
    }, 5000, 'the dead letter'))!;
    expect(c.received.map((r) => r.deliveryCount)).toEqual([1, 2]);
    expect(dead[0]!.headers[DEAD_LETTER_HEADERS.error]).toContain('delivered 3 times');
    expect(dead[0]!.headers[DEAD_LETTER_HEADERS.attempts]).toBe('3');
  });

  it('keeps a slowly handled event with its consumer past the acknowledgement timeout', async () => {
    const context = ctx();
    const t1 = await make(context);
    const t2 = await make({ ...context, processName: 'proc2' }, { name: 'other process' });
    const [api] = context.apis;
    const sub = { listenerName: 'slow', events: [{ apiName: api, eventName: 'e' }] };
    const slowly = async (e: ReceivedEvent) => {
      await new Promise((r) => setTimeout(r, 2500)); // 2.5 × acknowledgement_timeout
      await e.ack();
    };
    const a = collect(t1, sub, slowly);
    const b = collect(t2, sub, slowly);
    await settle();
    await t1.send(eventOf(api, 'e', { n: 1 }));
    await eventually(() => a.received.length + b.received.length >= 1, 5000, 'the delivery');
    await new Promise((r) => setTimeout(r, 3000));
    expect(a.received.length + b.received.length).toBe(1);
  });

  it('starts a new group at a stream position', async () => {
    const context = ctx();
    const t = await make(context);
    const [api] = context.apis;
    for (let i = 0; i < 4; i++) await t.send(eventOf(api, 'e', { i }));
    const c = collect(t, { listenerName: 'positioned', events: [{ apiName: api, eventName: 'e' }], since: { position: '3' } });
    await eventually(() => c.received.length === 2, 5000, 'two events');
    expect(c.received.map((r) => [r.position, r.message.kwargs['i']])).toEqual([
      ['3', 2],
      ['4', 3],
    ]);
  });

  it('reads history oldest first and between two times', async () => {
    const context = ctx();
    const t = await make(context);
    const [api] = context.apis;
    await t.send(eventOf(api, 'e', { i: 0 }));
    await new Promise((r) => setTimeout(r, 30));
    const from = new Date();
    await t.send(eventOf(api, 'e', { i: 1 }));
    await t.send(eventOf(api, 'e', { i: 2 }));
    const to = new Date();
    await new Promise((r) => setTimeout(r, 30));
    await t.send(eventOf(api, 'e', { i: 3 }));
    const read = async (q: Parameters<NatsEventTransport['history']>[0]) => {
      const out: unknown[] = [];
      for await (const h of t.history(q)) out.push(h.message.kwargs['i']);
      return out;
    };
    expect(await read({ apiName: api, order: 'oldest-first' })).toEqual([0, 1, 2, 3]);
    expect(await read({ apiName: api, since: from, until: to })).toEqual([2, 1]);
    expect(await read({ apiName: api, order: 'oldest-first', since: from, limit: 2 })).toEqual([1, 2]);
    expect(await read({ apiName: context.apis[1] })).toEqual([]); // no stream yet
  });

  it('maps a service name with dots to a valid consumer name', async () => {
    const context = { ...ctx(), serviceName: 'my.service:v2' };
    const t = await make(context);
    const [api] = context.apis;
    const c = collect(t, { listenerName: 'dotted', events: [{ apiName: api, eventName: 'e' }] });
    await settle();
    await t.send(eventOf(api, 'e', {}));
    await eventually(() => c.received.length === 1, 5000, 'the event');
  });
});

describe('nats events recovery', () => {
  it('ends the iteration with an error when its consumer is deleted, and a new iteration recreates it', { timeout: 30_000 }, async () => {
    const context = ctx();
    const t = await make(context);
    const [api] = context.apis;
    const o = resolveOptions(isolatedOptions(context.id));
    const got: number[] = [];
    const errors: string[] = [];
    const controller = new AbortController();
    // What the runtime does: consume, and on an error start again.
    const loop = (async () => {
      while (!controller.signal.aborted) {
        try {
          for await (const batch of t.consume({ listenerName: 'phoenix', events: [{ apiName: api, eventName: 'e' }], signal: controller.signal })) {
            for (const e of batch) {
              got.push(e.message.kwargs['i'] as number);
              await e.ack();
            }
          }
        } catch (error) {
          errors.push((error as Error).message);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    })();
    await settle();
    await t.send(eventOf(api, 'e', { i: 1 }));
    await eventually(() => got.length === 1, 5000, 'the first event');
    const jsm = await (await adminConnection()).jetstreamManager();
    const stream = `${o.streamPrefix}_event_${api.replaceAll('.', '-')}`;
    const consumer = `${context.serviceName}-phoenix`;
    await jsm.consumers.delete(stream, consumer);
    await eventually(() => errors.length >= 1, 20_000, 'the consume loop to notice');
    expect(errors[0]).toContain('is gone');
    await eventually(async () => (await jsm.consumers.info(stream, consumer).catch(() => null)) !== null, 10_000, 'the consumer to be recreated');
    await t.send(eventOf(api, 'e', { i: 2 }));
    await eventually(() => got.includes(2), 5000, 'an event after the recreation');
    controller.abort();
    await loop;
  });
});

describe('nats events: a listener group that changes', () => {
  it('updates the consumer when acknowledgement_timeout changes', async () => {
    const context = ctx();
    const [api] = context.apis;
    const sub = { listenerName: 'evolving', events: [{ apiName: api, eventName: 'e' }] };
    const first = await make(context);
    const a = collect(first, sub);
    await settle();
    await a.stop();
    const second = await make({ ...context, processName: 'proc2' }, { acknowledgement_timeout: 7, name: 'second' });
    collect(second, sub);
    await settle();
    const jsm = await (await adminConnection()).jetstreamManager();
    const o = resolveOptions(isolatedOptions(context.id));
    const info = await jsm.consumers.info(`${o.streamPrefix}_event_${api.replaceAll('.', '-')}`, `${context.serviceName}-evolving`);
    expect(info.config.ack_wait).toBe(7_000_000_000);
  });

  it('follows a listener that now also wants another event, losing nothing it had not acknowledged', async () => {
    const context = ctx();
    const [api] = context.apis;
    const t = await make(context);
    const a = collect(t, { listenerName: 'growing', events: [{ apiName: api, eventName: 'old' }] });
    await settle();
    await t.send(eventOf(api, 'old', { n: 1 }));
    await eventually(() => a.received.length === 1, 5000, 'the first event');
    await new Promise((r) => setTimeout(r, 100));
    await a.stop();
    // While the listener is down: one more of the old kind, and one of the new kind.
    await t.send(eventOf(api, 'old', { n: 2 }));
    await t.send(eventOf(api, 'new', { n: 3 }));
    const b = collect(t, { listenerName: 'growing', events: [{ apiName: api, eventName: 'old' }, { apiName: api, eventName: 'new' }] });
    await eventually(() => b.received.length >= 1, 5000, 'events after the change');
    await t.send(eventOf(api, 'new', { n: 4 }));
    await eventually(() => b.received.some((e) => e.message.kwargs['n'] === 4), 5000, 'a new event after the change');
    await new Promise((r) => setTimeout(r, 200));
    // Both events fired while it was down arrive; the acknowledged one is not redelivered.
    expect(b.received.map((e) => e.message.kwargs['n'])).toEqual([2, 3, 4]);
  });
});
