/**
 * `pnpm bench`: runs every selected scenario against every selected target several times (run i
 * of every target, then run i + 1: the machine drifts over minutes), prints
 * a table of medians with the bus/raw ratio, and writes the results as JSON.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, messageOf, SCENARIOS, type ScenarioName } from './common.js';
import type { ScenarioPlan } from './protocol.js';
import { runOnce, type BrokerUrls, type RunResult } from './runner.js';
import { TARGETS, type TargetInfo } from './targets/index.js';

const HELP = `Usage: pnpm bench [options]

  --transport LIST   memory,redis,nats,amqp (default: all)
  --kind LIST        bus,raw,raw-wire,moleculer (default: all)
  --target LIST      exact target ids, e.g. memory-bus,redis-raw (overrides --transport/--kind)
  --scenario LIST    events-bulk,events-serial,rpc-serial,rpc-concurrent (default: all)
  --runs N           runs per scenario; the median is reported (default 3)
  --count N          messages per run for every scenario (default: 100000 bulk events,
                     5000 serial events, 5000 serial calls, 20000 concurrent calls)
  --warmup N         messages sent before each measured run, not counted (default: 10000
                     bulk events, 3000 serial events or calls, 5000 concurrent calls; at
                     most the count; a tenth of it with --quick)
  --max-seconds S    time bound of one run (default 10)
  --in-flight N      calls in flight in rpc-concurrent (default 50)
  --listener-concurrency N
                     handlers a bus listener runs at once (default 16)
  --quick            tiny counts, one run, 5 s bound: a smoke test
  --events N         soak: fire N events in bulk once per target and report worker RSS growth
                     (default targets: the bus ones); not part of the default run
  --out DIR          where results go (default bench/results)
  --profile          write --cpu-prof profiles of every process to DIR/profiles
  --help`;

/** Default counts per scenario. */
const DEFAULT_COUNTS: Record<ScenarioName, number> = {
  'events-bulk': 100_000,
  'events-serial': 5000,
  'rpc-serial': 5000,
  'rpc-concurrent': 20_000,
  soak: 1_000_000,
};
const QUICK_COUNTS: Record<ScenarioName, number> = {
  'events-bulk': 300,
  'events-serial': 30,
  'rpc-serial': 50,
  'rpc-concurrent': 300,
  soak: 1000,
};

/**
 * Messages sent to warm up before each measured run (at most the count; a tenth of it with
 * --quick). One message at a time, a few hundred left the JIT cold: with 200 calls of warm-up,
 * RPC over Redis one at a time measured 0.73x raw, with 3,000 0.97x (the bus runs more code,
 * which takes longer to optimise).
 */
const WARMUP: Record<ScenarioName, number> = {
  'events-bulk': 10_000,
  'events-serial': 3000,
  'rpc-serial': 3000,
  'rpc-concurrent': 5000,
  soak: 0,
};

/** One row of the results: a target × scenario, medians over the runs. */
export interface ScenarioSummary {
  /** Target id. */
  target: string;
  /** Transport. */
  transport: string;
  /** bus, raw, raw-wire or moleculer. */
  kind: string;
  /** True for in-process targets (memory): client and worker share one process. */
  inProcess: boolean;
  /** Scenario. */
  scenario: ScenarioName;
  /** Messages per run asked for. */
  count: number;
  /** Median rate (events handled/s or calls/s). */
  rate: number | null;
  /** Median rate of this target divided by the raw client's in the same scenario and transport. */
  ratioToRaw: number | null;
  /**
   * Median rate of this target divided by the raw client's speaking Lightbus's wire format by
   * hand (`raw-wire`), same scenario and transport: what the bus adds on top of the protocol.
   */
  ratioToWire: number | null;
  /** Median p50 latency, ms. */
  p50Ms: number | null;
  /** Median p99 latency, ms. */
  p99Ms: number | null;
  /** Median client CPU, % of one core. */
  clientCpuPct: number | null;
  /** Median worker CPU, % of one core. */
  workerCpuPct: number | null;
  /** Median CPU ms per 1000 messages, client + worker. */
  cpuMsPer1k: number | null;
  /** Median Redis server CPU per message, µs (`INFO cpu`; Redis targets only). */
  brokerUsPerMsg: number | null;
  /** Median worker RSS at rest, MB. */
  workerRssRestMb: number | null;
  /** Median worker RSS after the run, MB. */
  workerRssAfterMb: number | null;
  /** Median worker peak RSS, MB. */
  workerMaxRssMb: number | null;
  /** Each run. */
  runs: RunResult[];
  /** Errors of runs that failed outright. */
  failures: string[];
}

function list(value: string | undefined): string[] | undefined {
  return value ? value.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
}

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} wants a positive integer, got "${value}".`);
  return n;
}

const mb = (bytes: number | null) => (bytes === null ? null : bytes / (1024 * 1024));

function summarize(target: TargetInfo, scenario: ScenarioName, count: number, runs: RunResult[], failures: string[]): ScenarioSummary {
  const ok = runs.filter((r) => r.ops > 0);
  const pick = (f: (r: RunResult) => number | null) => median(ok.map(f));
  return {
    target: target.id,
    transport: target.transport,
    kind: target.kind,
    inProcess: target.inProcess ?? false,
    scenario,
    count,
    rate: pick((r) => r.rate),
    ratioToRaw: null,
    ratioToWire: null,
    p50Ms: pick((r) => r.p50Ms),
    p99Ms: pick((r) => r.p99Ms),
    clientCpuPct: pick((r) => r.clientCpuPct),
    workerCpuPct: pick((r) => r.workerCpuPct),
    cpuMsPer1k: pick((r) => ((r.clientCpuMs + (r.workerCpuMs ?? 0)) / r.ops) * 1000),
    brokerUsPerMsg: pick((r) => (r.brokerCpuMs === null ? null : (r.brokerCpuMs / r.ops) * 1000)),
    workerRssRestMb: mb(pick((r) => r.workerRssRest)),
    workerRssAfterMb: mb(pick((r) => r.workerRssAfter)),
    workerMaxRssMb: mb(pick((r) => r.workerMaxRss)),
    runs,
    failures,
  };
}

function ratio(value: number | null): string {
  return value === null ? '' : `${value.toFixed(2)}×`;
}

function fmt(value: number | null, digits = 0): string {
  if (value === null) return '-';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The results as an aligned text table. */
export function formatTable(rows: ScenarioSummary[]): string {
  const header = ['target', 'scenario', 'rate/s', '×raw', '×wire', 'p50 ms', 'p99 ms', 'cpu c%', 'cpu w%', 'cpu ms/1k', 'redis µs/msg', 'w rss rest/after/peak MB', 'note'];
  const lines = rows.map((r) => [
    r.target + (r.inProcess ? ' (in-process)' : ''),
    r.scenario,
    fmt(r.rate),
    ratio(r.ratioToRaw),
    ratio(r.ratioToWire),
    fmt(r.p50Ms, 2),
    fmt(r.p99Ms, 2),
    fmt(r.clientCpuPct),
    fmt(r.workerCpuPct),
    fmt(r.cpuMsPer1k, 1),
    r.brokerUsPerMsg === null ? '' : fmt(r.brokerUsPerMsg, 1),
    `${fmt(r.workerRssRestMb)}/${fmt(r.workerRssAfterMb)}/${fmt(r.workerMaxRssMb)}`,
    [
      r.failures.length > 0 ? `${r.failures.length} failed: ${r.failures[0]}` : '',
      r.runs.some((x) => x.incomplete) ? 'not all handled' : '',
      r.runs.some((x) => x.errors > 0) ? `${r.runs.reduce((s, x) => s + x.errors, 0)} errors` : '',
      r.runs.some((x) => x.ops < r.count) && r.runs.length > 0 ? `time-bound (${fmt(median(r.runs.map((x) => x.ops)))} done)` : '',
    ]
      .filter(Boolean)
      .join('; '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const row = (cells: string[]) => cells.map((c, i) => (i < 2 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [row(header), row(widths.map((w) => '-'.repeat(w))), ...lines.map(row)].join('\n');
}

/** The results as a Markdown table (what bench/README.md shows). */
export function formatMarkdown(rows: ScenarioSummary[]): string {
  const header = ['target', 'scenario', 'rate/s', '×raw', '×wire', 'p50 ms', 'p99 ms', 'cpu c%', 'cpu w%', 'cpu ms/1k', 'redis µs/msg', 'worker RSS rest/after/peak MB'];
  const lines = rows.map((r) =>
    [
      r.target + (r.inProcess ? ' (in-process)' : ''),
      r.scenario,
      fmt(r.rate) + (r.runs.some((x) => x.ops < r.count) ? ' (time-bound)' : '') + (r.failures.length > 0 ? ` (${r.failures.length} run(s) failed)` : ''),
      ratio(r.ratioToRaw),
      ratio(r.ratioToWire),
      fmt(r.p50Ms, 2),
      fmt(r.p99Ms, 2),
      fmt(r.clientCpuPct),
      fmt(r.workerCpuPct),
      fmt(r.cpuMsPer1k, 1),
      r.brokerUsPerMsg === null ? '' : fmt(r.brokerUsPerMsg, 1),
      `${fmt(r.workerRssRestMb)}/${fmt(r.workerRssAfterMb)}/${fmt(r.workerMaxRssMb)}`,
    ].join(' | '),
  );
  return [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`, ...lines.map((l) => `| ${l} |`)].join('\n');
}

/** Runs the benchmark as the command line asks; returns the path of the JSON written. */
export async function main(argv: string[]): Promise<string | undefined> {
  const { values } = parseArgs({
    args: argv,
    options: {
      transport: { type: 'string' },
      kind: { type: 'string' },
      target: { type: 'string' },
      scenario: { type: 'string' },
      runs: { type: 'string' },
      count: { type: 'string' },
      'max-seconds': { type: 'string' },
      'in-flight': { type: 'string' },
      quick: { type: 'boolean' },
      'listener-concurrency': { type: 'string' },
      events: { type: 'string' },
      out: { type: 'string' },
      profile: { type: 'boolean' },
      warmup: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return undefined;
  }
  const soakEvents = positiveInt('events', values.events);
  const quick = values.quick ?? false;
  const transports = list(values.transport);
  const kinds = list(values.kind) ?? (soakEvents ? ['bus'] : undefined);
  const ids = list(values.target);
  for (const id of ids ?? []) if (!TARGETS.some((t) => t.id === id)) throw new Error(`Unknown target "${id}". Known: ${TARGETS.map((t) => t.id).join(', ')}.`);
  const targets = TARGETS.filter((t) =>
    ids ? ids.includes(t.id) : (!transports || transports.includes(t.transport)) && (!kinds || kinds.includes(t.kind)),
  );
  if (targets.length === 0) throw new Error('No target matches --transport/--kind/--target.');
  const scenarios = soakEvents ? (['soak'] as ScenarioName[]) : ((list(values.scenario) as ScenarioName[] | undefined) ?? [...SCENARIOS]);
  for (const s of scenarios) if (!SCENARIOS.includes(s) && s !== 'soak') throw new Error(`Unknown scenario "${s}". Known: ${SCENARIOS.join(', ')}.`);
  const runs = soakEvents ? 1 : (positiveInt('runs', values.runs) ?? (quick ? 1 : 3));
  const maxSeconds = positiveInt('max-seconds', values['max-seconds']) ?? (soakEvents ? 1800 : quick ? 5 : 10);
  const inFlight = positiveInt('in-flight', values['in-flight']) ?? 50;
  const countOverride = soakEvents ?? positiveInt('count', values.count);
  const warmupOverride = values.warmup === '0' ? 0 : positiveInt('warmup', values.warmup);
  const urls: BrokerUrls = {
    redisUrl: process.env.LB_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/9',
    natsUrl: process.env.LB_BENCH_NATS_URL ?? 'nats://127.0.0.1:4222',
    amqpUrl: process.env.LB_BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
    busListenerConcurrency: positiveInt('listener-concurrency', values['listener-concurrency']) ?? 16,
  };
  const outDir = resolve(values.out ?? join(fileURLToPath(new URL('..', import.meta.url)), 'results'));
  mkdirSync(outDir, { recursive: true });
  const profileDir = values.profile ? join(outDir, 'profiles') : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });

  const started = new Date();
  console.log(
    `Lightbus bench ${started.toISOString()}: ${targets.map((t) => t.id).join(', ')} × ${scenarios.join(', ')}, ${runs} run(s) each; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} on ${cpus().length} cores`,
  );
  const rows: ScenarioSummary[] = [];
  for (const scenario of scenarios) {
    const count = countOverride ?? (quick ? QUICK_COUNTS : DEFAULT_COUNTS)[scenario];
    const warmup = scenario === 'soak' ? 0 : (warmupOverride ?? (quick ? Math.ceil(count / 10) : Math.min(count, WARMUP[scenario])));
    const plan: ScenarioPlan = { scenario, count, maxMs: maxSeconds * 1000, inFlight, batch: 100, batchesInFlight: 10, fillerBytes: 160, warmup };
    const results = targets.map((): RunResult[] => []);
    const failures = targets.map((): string[] => []);
    // Round-robin: run i of every target, then run i + 1. This machine's speed drifts by tens of
    // percent over minutes; all runs of one target in a row, then all of the next, let that drift
    // into the ratios.
    for (let i = 0; i < runs; i++) {
      for (const [t, target] of targets.entries()) {
        try {
          const result = await runOnce(target, plan, urls, { profileDir });
          results[t]!.push(result);
          console.log(
            `  ${target.id} ${scenario} run ${i + 1}/${runs}: ${fmt(result.rate)}/s` +
              (result.p50Ms !== null ? ` p50 ${fmt(result.p50Ms, 2)} ms p99 ${fmt(result.p99Ms, 2)} ms` : '') +
              (result.incomplete ? ' (not all handled)' : ''),
          );
        } catch (error) {
          failures[t]!.push(messageOf(error));
          console.log(`  ${target.id} ${scenario} run ${i + 1}/${runs} failed: ${messageOf(error)}`);
        }
      }
    }
    for (const [t, target] of targets.entries()) rows.push(summarize(target, scenario, count, results[t]!, failures[t]!));
  }
  for (const row of rows) {
    if (row.kind === 'raw') continue;
    const same = (kind: string) => rows.find((r) => r.kind === kind && r.transport === row.transport && r.scenario === row.scenario);
    const raw = same('raw');
    if (raw?.rate && row.rate !== null) row.ratioToRaw = row.rate / raw.rate;
    const wire = row.kind === 'raw-wire' ? undefined : same('raw-wire');
    if (wire?.rate && row.rate !== null) row.ratioToWire = row.rate / wire.rate;
  }
  const table = formatTable(rows);
  console.log(`\n${table}\n`);
  if (soakEvents) {
    for (const row of rows) {
      const r = row.runs[0];
      if (!r) continue;
      console.log(
        `soak ${row.target}: ${fmt(r.ops)} events, worker RSS ${fmt(mb(r.workerRssRest))} → ${fmt(mb(r.workerRssAfter))} MB (growth ${fmt(mb(r.workerRssAfter - r.workerRssRest), 1)} MB, peak ${fmt(mb(r.workerMaxRss))} MB), heap ${fmt(mb(r.workerHeapRest), 1)} → ${fmt(mb(r.workerHeapAfter), 1)} MB`,
      );
    }
  }
  const document = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { cores: cpus().length, loadavgAtStart: loadavg(), node: process.version },
    options: { targets: targets.map((t) => t.id), scenarios, runs, maxSeconds, inFlight, quick, soakEvents: soakEvents ?? null, busListenerConcurrency: urls.busListenerConcurrency },
    results: rows,
  };
  const file = join(outDir, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(document, null, 2)}\n`);
  writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(document, null, 2)}\n`);
  writeFileSync(join(outDir, 'latest.md'), `${formatMarkdown(rows)}\n`);
  console.log(`Results: ${file}`);
  return file;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(messageOf(error));
    process.exitCode = 1;
  });
}
