/**
 * Starting chaos workers as real processes and following what they report.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isRunning, killHard, spawnTracked, stopGracefully, type TrackedProcess } from '@lightbus/test-infra';
import type { Tally } from './tally.js';
import { WORKER_ENV, type WorkerConfig, type WorkerLine } from './worker-protocol.js';

/** A log line the worker wrote (JSON on stderr). */
export interface WorkerLog {
  level: string;
  msg: string;
  [field: string]: unknown;
}

/** A running chaos worker. */
export interface WorkerHandle {
  /** The worker's process name. */
  readonly name: string;
  /** The OS process. */
  readonly proc: TrackedProcess;
  /** Every stdout line so far. */
  readonly lines: WorkerLine[];
  /** Every log line so far. */
  readonly logs: WorkerLog[];
  /** Resolves once the bus started; rejects when the worker fails or exits first. */
  ready(timeoutMs?: number): Promise<void>;
  /** True while the process runs. */
  readonly running: boolean;
  /** SIGKILL now. */
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit (SIGKILL after `timeoutMs`). Resolves with how it ended. */
  terminate(timeoutMs?: number): Promise<number | NodeJS.Signals>;
  /** Asks for a prototype/concurrency report (SIGUSR2) and waits for it. */
  report(timeoutMs?: number): Promise<{ polluted: string[]; maxConcurrency: number }>;
  /** CPU seconds (user + system) the process has used so far. */
  cpuSeconds(): number;
}

const CLOCK_TICKS = 100;

/** CPU seconds used by a process, from /proc/<pid>/stat (Linux). */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

function workerCommand(): string[] {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) return ['--import', 'tsx', self.replace(/worker-handle\.ts$/, 'worker.ts')];
  return [self.replace(/worker-handle\.js$/, 'worker.js')];
}

/**
 * Starts a worker process with `config`. Its handler reports go into `tally` (when given).
 * Extra environment (`NODE_EXTRA_CA_CERTS` for TLS) can be passed in `env`.
 */
export function startWorker(config: WorkerConfig, tally?: Tally, env: Record<string, string> = {}): WorkerHandle {
  const proc = spawnTracked(process.execPath, workerCommand(), {
    env: { ...process.env, ...env, [WORKER_ENV]: JSON.stringify(config), LIGHTBUS_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: WorkerLine[] = [];
  const logs: WorkerLog[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of waiters) w();
  };
  const splitter = (onLine: (line: string) => void) => {
    let buf = '';
    return (chunk: Buffer) => {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) onLine(line);
      }
    };
  };
  proc.child.stdout?.on(
    'data',
    splitter((text) => {
      let line: WorkerLine;
      try {
        line = JSON.parse(text) as WorkerLine;
      } catch {
        logs.push({ level: 'stdout', msg: text });
        return;
      }
      lines.push(line);
      if (tally) {
        if (line.t === 'start') tally.started(line.seq);
        else if (line.t === 'done') tally.finished(line.seq);
        else if (line.t === 'fail') tally.failed(line.seq);
        else if (line.t === 'corrupt') tally.corrupt.push(line.detail);
      }
      notify();
    }),
  );
  proc.child.stderr?.on(
    'data',
    splitter((text) => {
      try {
        logs.push(JSON.parse(text) as WorkerLog);
      } catch {
        logs.push({ level: 'stderr', msg: text });
      }
    }),
  );
  void proc.exited.then(notify);

  const waitForLine = <T extends WorkerLine['t']>(type: T, timeoutMs: number, from = 0): Promise<Extract<WorkerLine, { t: T }>> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = lines.slice(from).find((l) => l.t === type);
        const fatal = lines.find((l) => l.t === 'fatal');
        if (found) done(() => resolve(found as Extract<WorkerLine, { t: T }>));
        else if (fatal && fatal.t === 'fatal') done(() => reject(new Error(`Worker ${config.processName} failed: ${fatal.error}`)));
        else if (!isRunning(proc)) {
          done(() => reject(new Error(`Worker ${config.processName} exited before "${type}". Output:\n${proc.output().slice(-3000)}`)));
        }
      };
      const timer = setTimeout(() => done(() => reject(new Error(`Worker ${config.processName} sent no "${type}" within ${timeoutMs} ms. Output:\n${proc.output().slice(-3000)}`))), timeoutMs);
      const done = (settle: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        settle();
      };
      waiters.add(check);
      check();
    });

  return {
    name: config.processName,
    proc,
    lines,
    logs,
    ready: async (timeoutMs = 20_000) => {
      await waitForLine('ready', timeoutMs);
    },
    get running() {
      return isRunning(proc);
    },
    kill: () => killHard(proc),
    terminate: (timeoutMs = 15_000) => stopGracefully(proc, { signal: 'SIGTERM', timeoutMs }),
    report: async (timeoutMs = 5000) => {
      const from = lines.length;
      proc.child.kill('SIGUSR2');
      const proto = await waitForLine('proto', timeoutMs, from);
      const concurrency = await waitForLine('concurrency', timeoutMs, from);
      return { polluted: proto.polluted, maxConcurrency: concurrency.max };
    },
    cpuSeconds: () => processCpuSeconds(proc.pid),
  };
}

/** Polls `check` every 25 ms until it holds or `timeoutMs` passes; resolves with the last result. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}
