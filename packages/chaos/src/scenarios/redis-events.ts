/**
 * Bad-input scenarios on Redis: a poison event, and thousands of malformed or hostile raw
 * stream entries mixed with valid events.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { startRedis } from '@lightbus/test-infra';
import { readDeadLetters, replayDeadLetters } from '../dead-letters.js';
import { Checks, chaosScale, createChaosBus, since, uniqueApiName, type ScenarioResult } from '../harness.js';
import { Tally } from '../tally.js';
import { startWorker, waitUntil, type WorkerHandle } from '../worker-handle.js';
import type { WorkerConfig } from '../worker-protocol.js';

/**
 * A poison event (its handler always throws) among ordinary ones: it is retried up to the
 * delivery limit, then dead-lettered with its error while the events behind it keep flowing;
 * replayed from the dead-letter stream to a fixed worker, it is handled.
 */
export async function poisonEvent(): Promise<ScenarioResult> {
  const scale = chaosScale();
  const count = 100 * scale;
  const poisonSeq = 17;
  const maxDeliveries = 3;
  const redis = await startRedis({ appendonly: false });
  const raw = new Redis(redis.url, { lazyConnect: false });
  const apiName = uniqueApiName('poison');
  const stream = `${apiName}.*:stream`;
  const tally = new Tally();
  const checks = new Checks();
  const { bus, client } = createChaosBus({ apiName, transportOptions: { url: redis.url } });
  const workers: WorkerHandle[] = [];
  const started = Date.now();
  try {
    for (let seq = 1; seq <= count; seq++) {
      await client.tick.fire({ seq });
      tally.fired.add(seq);
    }
    const base: WorkerConfig = {
      apiName,
      transport: 'redis',
      transportOptions: { url: redis.url, block_timeout_ms: 250 },
      serviceName: 'chaos_svc',
      processName: 'worker-a',
      listenerName: 'counter',
      handlerDelayMs: 5,
      concurrency: 1,
      maxDeliveries,
      retryDelay: 0.1,
      poisonSeqs: [poisonSeq],
    };
    const a = startWorker(base, tally);
    workers.push(a);
    await a.ready();
    const settled = await waitUntil(async () => tally.handledCount >= count - 1 && (await raw.xlen(`${stream}:dead_letters`)) >= 1, 30_000 * scale);
    checks.that(settled, `the other events or the dead letter did not arrive in time (${tally.handledCount} of ${count - 1} handled)`);
    const letters = await readDeadLetters(raw, stream);
    const letter = letters[0];
    checks.that(letters.length === 1, `expected 1 dead letter, found ${letters.length}`);
    checks.that(letter !== undefined && letter.fields.includes(':seq') && letter.fields[letter.fields.indexOf(':seq') + 1] === String(poisonSeq), 'the dead letter is not the poison event');
    checks.that(letter !== undefined && letter.error.includes(`poison event ${poisonSeq}`), `the dead letter does not carry the handler's error: "${letter?.error ?? ''}"`);
    checks.that(letter?.attempts === maxDeliveries, `dead-lettered after ${letter?.attempts} deliveries, not ${maxDeliveries}`);
    checks.that(tally.failures.get(poisonSeq) === maxDeliveries, `the poison handler ran ${tally.failures.get(poisonSeq) ?? 0} times, not ${maxDeliveries}`);
    // The events behind it kept flowing: the one right after it was handled before it was given up.
    const lastFail = a.lines.findLastIndex((l) => l.t === 'fail');
    const nextDone = a.lines.findIndex((l) => l.t === 'done' && l.seq === poisonSeq + 1);
    checks.that(nextDone >= 0 && nextDone < lastFail, 'the event after the poison waited until the poison was dead-lettered');
    checks.that(!tally.done.has(poisonSeq), 'the poison event was reported handled');

    // Replay to a fixed worker (same group, no poison).
    await a.terminate();
    const b = startWorker({ ...base, poisonSeqs: [] }, tally);
    workers.push(b);
    await b.ready();
    const replayed = await replayDeadLetters(raw, stream);
    checks.that(replayed === 1, `replayed ${replayed} dead letters, not 1`);
    const healed = await waitUntil(() => tally.done.has(poisonSeq), 15_000);
    checks.that(healed, 'the replayed event was not handled');
    checks.that((await raw.xlen(`${stream}:dead_letters`)) === 0, 'the dead letter is still there after the replay');
    const row = tally.row('redis', 'poison event: retried, dead-lettered, replayed', `dead-lettered after ${letter?.attempts ?? '?'} deliveries with its error; ${replayed} replayed and handled; ${since(started)}`);
    checks.that(row.lost === 0, `${row.lost} events lost`);
    return { row, violations: checks.violations };
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    raw.disconnect();
    await bus.close({ timeoutMs: 2000 });
    await redis.stop();
  }
}

/** A small seeded random generator (mulberry32), so a failing fuzz run can be repeated. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What must happen to a hostile entry. */
type Expect = 'reject' | 'deliver' | 'skip' | 'either';

interface Hostile {
  kind: string;
  expect: Expect;
  fields: Array<string | Buffer>;
  /** The seq a handler would report, when it has one. */
  seq?: number;
}

/** Builds the hostile entries: every kind in turn, with random details. */
function hostileEntries(apiName: string, count: number, seed: number): Hostile[] {
  const random = seeded(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  let nextSeq = 1_000_000;
  const meta = (seq: number) => ['id', randomUUID(), 'api_name', apiName, 'event_name', 'tick', 'version', '1', ':seq', String(seq)];
  const without = (fields: string[], name: string) => {
    const i = fields.indexOf(name);
    return [...fields.slice(0, i), ...fields.slice(i + 2)];
  };
  const withValue = (fields: string[], name: string, value: string) => fields.map((f, i) => (i > 0 && fields[i - 1] === name && i % 2 === 1 ? value : f));
  const makers: Array<() => Hostile> = [
    () => {
      const seq = nextSeq++;
      const name = pick(['id', 'api_name', 'event_name', 'version']);
      return { kind: `missing ${name}`, expect: 'reject', fields: without(meta(seq), name), seq };
    },
    () => {
      const seq = nextSeq++;
      const name = pick(['id', 'api_name', 'event_name', 'version']);
      return { kind: `empty ${name}`, expect: name === 'api_name' || name === 'event_name' ? 'either' : 'reject', fields: withValue(meta(seq), name, ''), seq };
    },
    () => {
      const seq = nextSeq++;
      return { kind: 'extra metadata', expect: 'deliver', fields: [...meta(seq), pick(['extra', 'trace_id', 'x-forwarded']), 'x'], seq };
    },
    () => {
      const seq = nextSeq++;
      return { kind: 'non-JSON value', expect: 'reject', fields: withValue(meta(seq), ':seq', pick(['not json {', '{"a":', "'single'", 'undefined', 'NaN', '0x10', ''])), seq };
    },
    () => {
      const seq = nextSeq++;
      return { kind: 'wrong type', expect: 'reject', fields: withValue(meta(seq), ':seq', pick(['"12"', '1.5', 'null', '[]', '{}', 'true', '1e400'])), seq };
    },
    () => {
      const seq = nextSeq++;
      return { kind: 'bad version', expect: 'either', fields: withValue(meta(seq), 'version', pick(['abc', '-1', '1.5', '99999999999999999999', ' 1'])), seq };
    },
    () => {
      const seq = nextSeq++;
      return { kind: 'unknown parameter', expect: 'reject', fields: [...meta(seq), `:${pick(['nope', 'isAdmin', 'seq2'])}`, '1'], seq };
    },
    () => {
      const seq = nextSeq++;
      return { kind: 'missing parameter', expect: 'reject', fields: without(meta(seq), ':seq'), seq };
    },
    () => {
      const seq = nextSeq++;
      const payload = pick([
        '{"__proto__":{"polluted":true}}',
        '{"constructor":{"prototype":{"polluted":true}}}',
        '[{"__proto__":{"isAdmin":true}}]',
        '{"a":{"__proto__":{"x":1}}}',
      ]);
      return { kind: '__proto__ in a value', expect: 'either', fields: [...meta(seq), ':payload', payload], seq };
    },
    () => {
      const seq = nextSeq++;
      const name = pick([':__proto__', ':constructor', ':prototype', '__proto__', 'constructor']);
      return { kind: `field named ${name}`, expect: 'either', fields: [...meta(seq), name, '{"polluted":true}'], seq };
    },
    () => {
      const seq = nextSeq++;
      return { kind: 'other event', expect: 'skip', fields: withValue(meta(seq), 'event_name', 'not_listened'), seq };
    },
    () => {
      const seq = nextSeq++;
      return { kind: 'other API', expect: 'skip', fields: withValue(meta(seq), 'api_name', `${apiName}_other`), seq };
    },
    () => ({ kind: 'no-op entry', expect: 'skip', fields: ['', ''] }),
    () => {
      const seq = nextSeq++;
      return { kind: 'invalid UTF-8', expect: 'reject', fields: [...without(meta(seq), ':seq'), ':seq', Buffer.from([0xff, 0xfe, 0x31, 0xc3])], seq };
    },
    () => {
      const seq = nextSeq++;
      const extra: string[] = [];
      for (let i = 0; i < 300; i++) extra.push(`:p${i}`, String(i));
      return { kind: 'hundreds of fields', expect: 'reject', fields: [...meta(seq), ...extra], seq };
    },
    () => {
      const seq = nextSeq++;
      return { kind: 'unicode and NUL', expect: 'either', fields: [...meta(seq), ':payload', JSON.stringify(`\u0000\u202e𝕏${'é'.repeat(50)}`)], seq };
    },
  ];
  const out: Hostile[] = [];
  // A few heavy ones, whatever the count: over max_message_bytes, and deeply nested values.
  for (let i = 0; i < 3; i++) {
    const seq = nextSeq++;
    out.push({ kind: 'huge value (1.1 MB)', expect: 'reject', fields: [...meta(seq), ':payload', JSON.stringify('x'.repeat(1_150_000))], seq });
  }
  for (const depth of [1000, 20_000, 100_000]) {
    const seq = nextSeq++;
    out.push({ kind: `nesting ${depth} deep`, expect: 'either', fields: [...meta(seq), ':payload', '['.repeat(depth) + ']'.repeat(depth)], seq });
    const seq2 = nextSeq++;
    out.push({ kind: `object nesting ${depth} deep`, expect: 'either', fields: [...meta(seq2), ':payload', '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)], seq: seq2 });
  }
  while (out.length < count) out.push(makers[out.length % makers.length]!());
  // Shuffle (seeded) so kinds are mixed.
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * 10,000 malformed or hostile entries written raw into the stream (missing and extra metadata,
 * non-JSON, huge values, deep nesting, `__proto__`/`constructor` keys, wrong types ...) mixed
 * with valid events fired by a real producer. The worker must stay up, dead-letter or skip each
 * bad entry with a logged reason, leave nothing stuck pending, never see its prototypes
 * polluted, and deliver every valid event.
 */
export async function fuzzStream(options: { hostile?: number; valid?: number; seed?: number } = {}): Promise<ScenarioResult> {
  const scale = chaosScale();
  const hostileCount = options.hostile ?? 10_000 * Math.min(scale, 3);
  const validCount = options.valid ?? 200 * scale;
  const seed = options.seed ?? 20261121;
  const redis = await startRedis({ appendonly: false });
  const raw = new Redis(redis.url, { lazyConnect: false });
  const apiName = uniqueApiName('fuzz');
  const stream = `${apiName}.*:stream`;
  const tally = new Tally();
  const checks = new Checks();
  const { bus, client } = createChaosBus({ apiName, transportOptions: { url: redis.url } });
  const workers: WorkerHandle[] = [];
  const started = Date.now();
  const protoBefore = Object.getOwnPropertyNames(Object.prototype).length;
  try {
    const worker = startWorker(
      {
        apiName,
        transport: 'redis',
        transportOptions: { url: redis.url, block_timeout_ms: 250, acknowledgement_timeout: 60 },
        serviceName: 'chaos_svc',
        processName: 'fuzz-worker',
        listenerName: 'counter',
        concurrency: 8,
        batchSize: 100,
        maxDeliveries: 2,
        retryDelay: 0.05,
      },
      tally,
    );
    workers.push(worker);
    await worker.ready();
    const hostile = hostileEntries(apiName, hostileCount, seed);
    const chunks = Math.max(1, Math.ceil(hostile.length / 500));
    let validSeq = 0;
    for (let c = 0; c < chunks; c++) {
      const pipeline = raw.pipeline();
      for (const entry of hostile.slice(c * 500, (c + 1) * 500)) pipeline.xadd(stream, '*', ...entry.fields);
      await pipeline.exec();
      const validHere = Math.ceil(validCount / chunks);
      for (let i = 0; i < validHere && validSeq < validCount; i++) {
        validSeq++;
        await client.tick.fire({ seq: validSeq, payload: { note: 'valid', n: validSeq } });
        tally.fired.add(validSeq);
      }
    }
    const deliverable = hostile.filter((h) => h.expect === 'deliver');
    for (const h of deliverable) tally.fired.add(h.seq!);
    const rejects = hostile.filter((h) => h.expect === 'reject');
    const pending = async () => Number(((await raw.xpending(stream, 'chaos_svc-counter')) as [number])[0]);
    const groupCaughtUp = async () => {
      const groups = (await raw.xinfo('GROUPS', stream)) as unknown[][];
      const group = groups.find((g) => g[1] === 'chaos_svc-counter');
      const lastDelivered = group ? String(group[group.indexOf('last-delivered-id') + 1]) : '';
      const info = (await raw.xinfo('STREAM', stream)) as unknown[];
      return lastDelivered === String(info[info.indexOf('last-generated-id') + 1]);
    };
    const done = await waitUntil(async () => tally.complete && (await groupCaughtUp()) && (await pending()) === 0, 60_000 * scale);
    const stuck = await pending();
    checks.that(done, `the worker did not get through the stream in time: ${tally.lostSeqs().length} valid events missing, ${stuck} entries pending`);
    checks.that(worker.running, `the worker died: ${worker.proc.output().slice(-500)}`);
    checks.that(stuck === 0, `${stuck} entries stay pending (neither acknowledged nor dead-lettered)`);
    const accepted = rejects.filter((h) => h.seq !== undefined && tally.done.has(h.seq));
    checks.that(accepted.length === 0, `${accepted.length} entries that should have been refused reached the handler: ${[...new Set(accepted.map((h) => h.kind))].join(', ')}`);
    const skippedButHandled = hostile.filter((h) => h.expect === 'skip' && h.seq !== undefined && tally.done.has(h.seq));
    checks.that(skippedButHandled.length === 0, `${skippedButHandled.length} entries of other events/APIs reached the handler`);
    checks.that(tally.corrupt.length === 0, `the handler received ${tally.corrupt.length} corrupt events: ${tally.corrupt.slice(0, 3).join('; ')}`);
    const deadLetters = await raw.xlen(`${stream}:dead_letters`);
    checks.that(deadLetters >= rejects.length, `only ${deadLetters} dead letters for ${rejects.length} entries that must be refused`);
    const letters = await readDeadLetters(raw, stream, 20_000);
    const withoutReason = letters.filter((l) => !l.error).length;
    checks.that(withoutReason === 0, `${withoutReason} dead letters carry no reason`);
    const reasons = worker.logs.filter((l) => (l.level === 'warn' || l.level === 'error') && /malformed|invalid|dead-letter/i.test(l.msg)).length;
    checks.that(reasons >= deadLetters, `${deadLetters} entries were dead-lettered but only ${reasons} reasons were logged`);
    const report = await worker.report();
    checks.that(report.polluted.length === 0, `the worker's Object.prototype was polluted: ${report.polluted.join(', ')}`);
    checks.that(Object.getOwnPropertyNames(Object.prototype).length === protoBefore && ({} as Record<string, unknown>)['polluted'] === undefined, 'the test process prototype was polluted');
    const eitherHandled = hostile.filter((h) => h.expect === 'either' && h.seq !== undefined && tally.done.has(h.seq)).length;
    const row = tally.row(
      'redis',
      `${hostile.length} hostile raw entries + ${validCount} valid events`,
      `${deadLetters} dead-lettered with a reason, ${hostile.filter((h) => h.expect === 'skip').length} skipped, ${eitherHandled} borderline accepted; worker up; prototypes clean; ${since(started)}`,
    );
    checks.that(row.lost === 0, `${row.lost} valid events lost: ${tally.lostSeqs().slice(0, 10).join(', ')}`);
    const byKind = new Map<string, { count: number; handled: number; expect: Expect }>();
    for (const h of hostile) {
      const k = byKind.get(h.kind) ?? { count: 0, handled: 0, expect: h.expect };
      k.count++;
      if (h.seq !== undefined && tally.done.has(h.seq)) k.handled++;
      byKind.set(h.kind, k);
    }
    const details = [...byKind.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([kind, k]) => `  ${kind.padEnd(28)} ${String(k.count).padStart(5)} written, ${String(k.handled).padStart(5)} reached the handler (expected: ${k.expect})`)
      .join('\n');
    return { row, violations: checks.violations, details: `Hostile entries by kind (seed ${seed}):\n${details}` };
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    raw.disconnect();
    await bus.close({ timeoutMs: 2000 });
    await redis.stop();
  }
}
