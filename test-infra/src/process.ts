/**
 * Child processes that never outlive the test that started them.
 *
 * Every process started through {@link spawnTracked} is killed (SIGKILL, after a SIGCONT in case
 * it was paused) when its owner stops it, when the Node process exits normally, on SIGINT/SIGTERM,
 * and — through a small watchdog process that holds a pipe to us — even when this Node process
 * is itself killed with SIGKILL: the watchdog sees the pipe close and kills what is left.
 *
 * @module
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const live = new Map<number, ChildProcess>();
const tempDirs = new Set<string>();
let hooksInstalled = false;
let watchdog: ChildProcess | undefined;

/** The watchdog: reads "+pid" / "-pid" lines; when its stdin closes, SIGKILLs every pid still listed. */
const WATCHDOG_SOURCE = `
const pids = new Set();
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    const pid = Number(line.slice(1));
    if (!Number.isInteger(pid) || pid <= 0) continue;
    if (line[0] === '+') pids.add(pid); else pids.delete(pid);
  }
});
const end = () => {
  for (const pid of pids) { try { process.kill(pid, 'SIGCONT'); process.kill(pid, 'SIGKILL'); } catch {} }
  process.exit(0);
};
process.stdin.on('end', end);
process.stdin.on('error', end);
process.on('SIGTERM', end);
`;

function ensureWatchdog(): ChildProcess | undefined {
  if (watchdog && watchdog.exitCode === null) return watchdog;
  try {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    watchdog.on('error', () => undefined);
    watchdog.stdin?.on('error', () => undefined);
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  } catch {
    watchdog = undefined;
  }
  return watchdog;
}

function tellWatchdog(line: string): void {
  const w = ensureWatchdog();
  if (w?.stdin && !w.stdin.destroyed) w.stdin.write(`${line}\n`);
}

/** Kills every tracked process and removes every temp folder at once (synchronous; safe in `exit` handlers). */
export function killAllTracked(): void {
  for (const [pid, child] of live) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // already gone
    }
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', killAllTracked);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      killAllTracked();
      process.kill(process.pid, signal);
    };
    // Only take over the signal when nobody else handles it, so a test runner keeps its own handling.
    if (process.listenerCount(signal) === 0) process.once(signal, onSignal);
  }
}

/** A process started by {@link spawnTracked}. */
export interface TrackedProcess {
  /** The operating-system process. */
  readonly child: ChildProcess;
  /** Its pid. */
  readonly pid: number;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  readonly exited: Promise<number | NodeJS.Signals>;
  /** Everything the process wrote to stdout and stderr so far (capped at the last 1 MiB). */
  output(): string;
}

/**
 * Spawns a process that is killed when the test process goes away, whatever the way.
 * stdout and stderr are captured (see {@link TrackedProcess.output}) unless `stdio` says otherwise.
 */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}): TrackedProcess {
  installHooks();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  if (child.pid === undefined) {
    throw new Error(`Could not start ${command}: is it installed and on the PATH? (${args.join(' ')})`);
  }
  const pid = child.pid;
  live.set(pid, child);
  tellWatchdog(`+${pid}`);
  let captured = '';
  const capture = (chunk: Buffer | string) => {
    captured += chunk.toString();
    if (captured.length > 1_048_576) captured = captured.slice(-1_048_576);
  };
  child.stdout?.on('data', capture);
  child.stderr?.on('data', capture);
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(pid);
      tellWatchdog(`-${pid}`);
      resolve(signal ?? code ?? 0);
    });
    child.once('error', () => {
      live.delete(pid);
      resolve(-1);
    });
  });
  return { child, pid, exited, output: () => captured };
}

/** True while the process has not exited. */
export function isRunning(proc: TrackedProcess): boolean {
  return proc.child.exitCode === null && proc.child.signalCode === null;
}

/** Sends SIGKILL (and SIGCONT first, so a paused process dies too) and waits for the exit. */
export async function killHard(proc: TrackedProcess): Promise<void> {
  if (!isRunning(proc)) return;
  try {
    process.kill(proc.pid, 'SIGCONT');
  } catch {
    // already gone
  }
  proc.child.kill('SIGKILL');
  await proc.exited;
}

/**
 * Asks the process to stop with `signal` (default SIGTERM) and waits up to `timeoutMs`; then
 * kills it hard. Resolves with how it ended.
 */
export async function stopGracefully(proc: TrackedProcess, options: { signal?: NodeJS.Signals; timeoutMs?: number } = {}): Promise<number | NodeJS.Signals> {
  if (!isRunning(proc)) return proc.exited;
  try {
    process.kill(proc.pid, 'SIGCONT');
  } catch {
    // already gone
  }
  proc.child.kill(options.signal ?? 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), options.timeoutMs ?? 10_000);
  });
  const outcome = await Promise.race([proc.exited, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    await killHard(proc);
    return 'SIGKILL';
  }
  return outcome;
}

/** A fresh temp folder, removed by {@link removeTempDir} or when the process exits. */
export function makeTempDir(prefix: string): string {
  installHooks();
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

/** Removes a folder made by {@link makeTempDir}. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** How many tracked processes are alive (for tests of the harness itself). */
export function trackedCount(): number {
  return live.size;
}

/**
 * Sends SIGSTOP or SIGCONT and waits (synchronously, at most `timeoutMs`) until the kernel
 * reports the process stopped or running again: the signal alone takes effect a moment later,
 * and a test that probes the server right after `pause()` must find it stopped.
 */
export function signalAndSettle(pid: number, signal: 'SIGSTOP' | 'SIGCONT', timeoutMs = 2000): void {
  process.kill(pid, signal);
  const wantStopped = signal === 'SIGSTOP';
  const deadline = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < deadline) {
    let state: string | undefined;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      return; // no /proc (not Linux) or the process is gone: nothing to wait for
    }
    const stopped = state === 'T' || state === 't';
    if (stopped === wantStopped) return;
    Atomics.wait(pause, 0, 0, 2);
  }
}
