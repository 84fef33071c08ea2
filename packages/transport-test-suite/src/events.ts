import { afterEach, describe, expect, it } from 'vitest';
import {
  newMessageId,
  type EventMessage,
  type EventSubscription,
  type EventTransport,
  type ReceivedEvent,
} from '@lightbus/core';
import { eventually, newContext, type SuiteContext } from './context.js';

/** Reads the broker directly, bypassing the transport under test. */
export interface EventBackdoor {
  /** How many events of `apiName` the broker holds (no-op entries excluded). */
  countStored(context: SuiteContext, apiName: string): Promise<number>;
  /** Dead-lettered events of `apiName` for `listenerName`, with the error text stored beside each. */
  deadLetters?(context: SuiteContext, apiName: string, listenerName: string): Promise<Array<{ message: EventMessage; error: string }>>;
  /** Removes everything the test wrote. */
  cleanup?(context: SuiteContext): Promise<void>;
}

/** Options of {@link describeEventTransport}. */
export interface EventSuiteOptions {
  /** Shown in the test names. */
  name: string;
  /**
   * Builds a transport for `context` (a test calls it several times with other process names to
   * play several processes). The transport should redeliver abandoned events within about one
   * second (set its acknowledgement timeout to 1 s for the suite).
   */
  create(context: SuiteContext): EventTransport | Promise<EventTransport>;
  /** Direct broker access, for checks of what was really written. */
  backdoor?: EventBackdoor;
  /** Per-test timeout in ms. Default 20000. */
  timeoutMs?: number;
}

function eventOf(apiName: string, eventName: string, kwargs: Record<string, unknown>): EventMessage {
  return { id: newMessageId(), apiName, eventName, version: 1, kwargs };
}

/** Collects events from a consume loop into an array until stopped. */
export class Collector {
  readonly received: ReceivedEvent[] = [];
  readonly #controller = new AbortController();
  readonly done: Promise<void>;

  /**
   * @param transport the transport to consume from
   * @param subscription all but the signal
   * @param settle what to do with each event (default: ack)
   */
  constructor(
    transport: EventTransport,
    subscription: Omit<EventSubscription, 'signal'>,
    settle: ((event: ReceivedEvent) => Promise<void> | void) | null = (e) => e.ack(),
  ) {
    this.done = (async () => {
      for await (const batch of transport.consume({ ...subscription, signal: this.#controller.signal })) {
        for (const event of batch) {
          this.received.push(event);
          if (settle) await settle(event);
        }
      }
    })();
  }

  /** Stops consuming and waits for the loop to end. */
  async stop(): Promise<void> {
    this.#controller.abort();
    await this.done;
  }
}

/** Waits until a fresh consumer group is in place (brokers create it asynchronously). */
async function settleGroup(): Promise<void> {
  await new Promise((r) => setTimeout(r, 300));
}

/**
 * The event-transport conformance suite. Call it at the top level of a vitest file:
 *
 * ```ts
 * describeEventTransport({ name: 'redis', create: (ctx) => createRedisEventTransport({...}, ctx) });
 * ```
 * Tests of capabilities the transport does not claim are skipped, visibly.
 */
export function describeEventTransport(options: EventSuiteOptions): void {
  const timeout = options.timeoutMs ?? 20_000;
  describe(`${options.name}: event transport conformance`, () => {
    const open: EventTransport[] = [];
    const collectors: Collector[] = [];
    const contexts: SuiteContext[] = [];
    let capabilities: EventTransport['capabilities'] | undefined;

    async function make(context: SuiteContext): Promise<EventTransport> {
      const transport = await options.create(context);
      if (transport.open) await transport.open();
      capabilities = transport.capabilities;
      open.push(transport);
      return transport;
    }
    function ctx(): SuiteContext {
      const context = newContext();
      contexts.push(context);
      return context;
    }
    function collect(...args: ConstructorParameters<typeof Collector>): Collector {
      const c = new Collector(...args);
      collectors.push(c);
      return c;
    }

    afterEach(async () => {
      await Promise.allSettled(collectors.splice(0).map((c) => c.stop()));
      await Promise.allSettled(open.splice(0).map((t) => t.close()));
      for (const c of contexts.splice(0)) await options.backdoor?.cleanup?.(c);
    });

    it('delivers a sent event intact to a listener', { timeout }, async () => {
      const context = ctx();
      const transport = await make(context);
      const [api] = context.apis;
      const c = collect(transport, { listenerName: 'l1', events: [{ apiName: api, eventName: 'user_registered' }] });
      await settleGroup();
      const sent = eventOf(api, 'user_registered', { username: 'élodie', nested: { list: [1, 2.5, true, null, 'x'] }, empty: {} });
      await transport.send(sent);
      await eventually(() => c.received.length === 1, 5000, 'the event');
      const got = c.received[0]!;
      expect(got.message).toEqual(sent);
      expect(got.deliveryCount).toBe(1);
      expect(typeof got.position).toBe('string');
      if (options.backdoor) expect(await options.backdoor.countStored(context, api)).toBeGreaterThanOrEqual(1);
    });

    it('calls onReady once subscribed: an event sent right then reaches a brand-new listener group', { timeout }, async () => {
      const context = ctx();
      const transport = await make(context);
      const [api] = context.apis;
      let readyCalls = 0;
      let ready!: () => void;
      const subscribed = new Promise<void>((resolve) => (ready = resolve));
      const c = collect(transport, {
        listenerName: 'fresh',
        events: [{ apiName: api, eventName: 'e' }],
        onReady: () => {
          readyCalls++;
          ready();
        },
      });
      await subscribed; // no settling pause: this is what bus.start() waits for
      await transport.send(eventOf(api, 'e', { n: 1 }));
      await eventually(() => c.received.length === 1, 5000, 'the event sent right after onReady');
      expect(readyCalls).toBe(1);
    });

    it('keeps the order of events sent by one process', { timeout }, async () => {
      const context = ctx();
      const transport = await make(context);
      const [api] = context.apis;
      const c = collect(transport, { listenerName: 'ordered', events: [{ apiName: api, eventName: 'e' }] });
      await settleGroup();
      await Promise.all(Array.from({ length: 50 }, (_, i) => transport.send(eventOf(api, 'e', { i }))));
      await eventually(() => c.received.length === 50, 5000, '50 events');
      expect(c.received.map((r) => r.message.kwargs['i'])).toEqual(Array.from({ length: 50 }, (_, i) => i));
    });

    it('skips events of the same API that the listener did not ask for', { timeout }, async () => {
      const context = ctx();
      const transport = await make(context);
      const [api] = context.apis;
      const c = collect(transport, { listenerName: 'picky', events: [{ apiName: api, eventName: 'wanted' }] });
      await settleGroup();
      await transport.send(eventOf(api, 'unwanted', { n: 1 }));
      await transport.send(eventOf(api, 'wanted', { n: 2 }));
      await eventually(() => c.received.length >= 1, 5000, 'the wanted event');
      await new Promise((r) => setTimeout(r, 200));
      expect(c.received.map((r) => r.message.eventName)).toEqual(['wanted']);
    });

    it('listens to events of two APIs in one subscription', { timeout }, async () => {
      const context = ctx();
      const transport = await make(context);
      const [a, b] = context.apis;
      const c = collect(transport, { listenerName: 'both', events: [{ apiName: a, eventName: 'x' }, { apiName: b, eventName: 'y' }] });
      await settleGroup();
      await transport.send(eventOf(a, 'x', {}));
      await transport.send(eventOf(b, 'y', {}));
      await eventually(() => c.received.length === 2, 5000, 'both events');
      expect(c.received.map((r) => r.message.apiName).sort()).toEqual([a, b].sort());
    });

    it('ends the iteration promptly when the signal aborts', { timeout }, async () => {
      const context = ctx();
      const transport = await make(context);
      const c = new Collector(transport, { listenerName: 'quitter', events: [{ apiName: context.apis[0], eventName: 'e' }] });
      await settleGroup();
      const started = Date.now();
      await c.stop();
      expect(Date.now() - started).toBeLessThan(3000);
    });

    describe('listener groups', () => {
      it('gives every listener name every event', { timeout }, async (t) => {
        const context = ctx();
        const transport = await make(context);
        if (!capabilities?.consumerGroups) t.skip();
        const [api] = context.apis;
        const a = collect(transport, { listenerName: 'first', events: [{ apiName: api, eventName: 'e' }] });
        const b = collect(transport, { listenerName: 'second', events: [{ apiName: api, eventName: 'e' }] });
        await settleGroup();
        for (let i = 0; i < 5; i++) await transport.send(eventOf(api, 'e', { i }));
        await eventually(() => a.received.length === 5 && b.received.length === 5, 5000, 'both groups');
      });

      it('shares one listener name between processes: each event handled once', { timeout }, async (t) => {
        const context = ctx();
        const first = await make(context);
        if (!capabilities?.consumerGroups) t.skip();
        const second = await make({ ...context, processName: 'proc2' });
        const [api] = context.apis;
        const a = collect(first, { listenerName: 'shared', events: [{ apiName: api, eventName: 'e' }], batchSize: 1 });
        const b = collect(second, { listenerName: 'shared', events: [{ apiName: api, eventName: 'e' }], batchSize: 1 });
        await settleGroup();
        for (let i = 0; i < 20; i++) await first.send(eventOf(api, 'e', { i }));
        await eventually(() => a.received.length + b.received.length >= 20, 5000, '20 events');
        await new Promise((r) => setTimeout(r, 300));
        const all = [...a.received, ...b.received].map((r) => r.message.kwargs['i']);
        expect(all.length).toBe(20);
        expect(new Set(all).size).toBe(20);
      });

      it('does not give a new group events sent before it existed (since: new)', { timeout }, async (t) => {
        const context = ctx();
        const transport = await make(context);
        if (!capabilities?.consumerGroups) t.skip();
        const [api] = context.apis;
        await transport.send(eventOf(api, 'e', { early: true }));
        const c = collect(transport, { listenerName: 'late', events: [{ apiName: api, eventName: 'e' }] });
        await settleGroup();
        await transport.send(eventOf(api, 'e', { early: false }));
        await eventually(() => c.received.length >= 1, 5000, 'the later event');
        await new Promise((r) => setTimeout(r, 200));
        expect(c.received.map((r) => r.message.kwargs['early'])).toEqual([false]);
      });
    });

    describe('at-least-once delivery', () => {
      it('redelivers an event whose consumer stopped without settling it', { timeout }, async (t) => {
        const context = ctx();
        const transport = await make(context);
        if (!capabilities?.redelivery) t.skip();
        const [api] = context.apis;
        const sub = { listenerName: 'crashy', events: [{ apiName: api, eventName: 'e' }] };
        const first = collect(transport, sub, null); // never settles
        await settleGroup();
        await transport.send(eventOf(api, 'e', { n: 1 }));
        await eventually(() => first.received.length === 1, 5000, 'the first delivery');
        await first.stop();
        const again = await make({ ...context, processName: 'proc2' });
        const second = collect(again, sub);
        await eventually(() => second.received.length >= 1, 8000, 'the redelivery');
        expect(second.received[0]!.message.kwargs).toEqual({ n: 1 });
        expect(second.received[0]!.deliveryCount).toBeGreaterThanOrEqual(2);
      });

      it('redelivers a nacked event, no sooner than the delay', { timeout }, async (t) => {
        const context = ctx();
        const transport = await make(context);
        if (!capabilities?.redelivery) t.skip();
        const [api] = context.apis;
        const times: number[] = [];
        const c = collect(transport, { listenerName: 'retry', events: [{ apiName: api, eventName: 'e' }] }, async (e) => {
          times.push(Date.now());
          if (e.deliveryCount === 1) await e.nack({ delayMs: 300, error: new Error('try again') });
          else await e.ack();
        });
        await settleGroup();
        await transport.send(eventOf(api, 'e', { n: 1 }));
        await eventually(() => c.received.length === 2, 8000, 'the retry');
        expect(c.received[1]!.deliveryCount).toBe(2);
        expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(250);
        await new Promise((r) => setTimeout(r, 300));
        expect(c.received.length).toBe(2);
      });

      it('does not redeliver an acknowledged event', { timeout }, async () => {
        const context = ctx();
        const transport = await make(context);
        const [api] = context.apis;
        const sub = { listenerName: 'acker', events: [{ apiName: api, eventName: 'e' }] };
        const first = collect(transport, sub);
        await settleGroup();
        await transport.send(eventOf(api, 'e', { n: 1 }));
        await eventually(() => first.received.length === 1, 5000, 'the event');
        await new Promise((r) => setTimeout(r, 200));
        await first.stop();
        const again = await make({ ...context, processName: 'proc2' });
        const second = collect(again, sub);
        await new Promise((r) => setTimeout(r, 1800));
        expect(second.received.length).toBe(0);
      });
    });

    describe('dead letters', () => {
      it('stores a dead-lettered event with its error and does not redeliver it', { timeout }, async (t) => {
        const context = ctx();
        const transport = await make(context);
        if (!capabilities?.deadLetter) t.skip();
        const [api] = context.apis;
        const c = collect(transport, { listenerName: 'dlq', events: [{ apiName: api, eventName: 'e' }] }, (e) =>
          e.message.kwargs['poison'] ? e.deadLetter(new Error('poisoned')) : e.ack(),
        );
        await settleGroup();
        await transport.send(eventOf(api, 'e', { poison: true }));
        await transport.send(eventOf(api, 'e', { poison: false }));
        await eventually(() => c.received.length === 2, 5000, 'both events');
        await new Promise((r) => setTimeout(r, 1500));
        expect(c.received.length).toBe(2);
        if (options.backdoor?.deadLetters) {
          const letters = await options.backdoor.deadLetters(context, api, 'dlq');
          expect(letters.length).toBe(1);
          expect(letters[0]!.message.kwargs).toEqual({ poison: true });
          expect(letters[0]!.error).toContain('poisoned');
        }
      });
    });

    describe('replay and history', () => {
      it('starts a new group at the beginning with since: all', { timeout }, async (t) => {
        const context = ctx();
        const transport = await make(context);
        if (!capabilities?.replay) t.skip();
        const [api] = context.apis;
        for (let i = 0; i < 3; i++) await transport.send(eventOf(api, 'e', { i }));
        const c = collect(transport, { listenerName: 'replayer', events: [{ apiName: api, eventName: 'e' }], since: 'all' });
        await eventually(() => c.received.length === 3, 5000, 'three replayed events');
        expect(c.received.map((r) => r.message.kwargs['i'])).toEqual([0, 1, 2]);
      });

      it('starts a new group at a time with since: { time }', { timeout }, async (t) => {
        const context = ctx();
        const transport = await make(context);
        if (!capabilities?.replay) t.skip();
        const [api] = context.apis;
        await transport.send(eventOf(api, 'e', { i: 0 }));
        await new Promise((r) => setTimeout(r, 50));
        const middle = new Date();
        await new Promise((r) => setTimeout(r, 50));
        await transport.send(eventOf(api, 'e', { i: 1 }));
        const c = collect(transport, { listenerName: 'timed', events: [{ apiName: api, eventName: 'e' }], since: { time: middle } });
        await eventually(() => c.received.length >= 1, 5000, 'the later event');
        await new Promise((r) => setTimeout(r, 200));
        expect(c.received.map((r) => r.message.kwargs['i'])).toEqual([1]);
      });

      it('reads history newest first, with a limit and an event filter', { timeout }, async (t) => {
        const context = ctx();
        const transport = await make(context);
        if (!capabilities?.history || !transport.history) t.skip();
        const [api] = context.apis;
        for (let i = 0; i < 5; i++) await transport.send(eventOf(api, i % 2 === 0 ? 'even' : 'odd', { i }));
        const all: number[] = [];
        for await (const h of transport.history!({ apiName: api })) all.push(h.message.kwargs['i'] as number);
        expect(all).toEqual([4, 3, 2, 1, 0]);
        const limited: number[] = [];
        for await (const h of transport.history!({ apiName: api, eventName: 'even', limit: 2 })) limited.push(h.message.kwargs['i'] as number);
        expect(limited).toEqual([4, 2]);
      });
    });
  });
}
