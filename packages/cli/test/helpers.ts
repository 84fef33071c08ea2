import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The built executable. */
export const BIN = join(import.meta.dirname, '..', 'dist', 'bin.js');
/** The fixture services. */
export const FIXTURES = join(import.meta.dirname, 'fixtures');

/** An empty folder outside any project. */
export function emptyDir(): string {
  return mkdtempSync(join(tmpdir(), 'lightbus-cli-'));
}

/** Environment for a child: no LIGHTBUS_* from the outer shell, plus `extra`. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LIGHTBUS_') && !k.startsWith('LB_TEST_') && !k.startsWith('VITEST')) env[k] = v;
  return { ...env, ...extra };
}

/** A running `lightbus` subprocess. */
export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout+stderr contain `text` (rejects after `timeoutMs`). */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code (or 128+signal number when killed by a signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `node dist/bin.js ...args`. */
export function startCli(args: string[], options: { cwd?: string; env?: Record<string, string>; input?: string } = {}): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? process.cwd(),
    env: childEnv(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: Array<() => void> = [];
  const notify = () => waiters.splice(0).forEach((w) => w());
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    notify();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    notify();
  });
  if (options.input !== undefined) child.stdin.end(options.input);
  else child.stdin.end();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(text, timeoutMs = 15_000) {
      return new Promise<void>((resolve, reject) => {
        const matches = () => (typeof text === 'string' ? (out + err).includes(text) : text.test(out + err));
        const timer = setTimeout(() => reject(new Error(`Timed out waiting for ${String(text)}.\nstdout:\n${out}\nstderr:\n${err}`)), timeoutMs);
        const check = () => {
          if (matches()) {
            clearTimeout(timer);
            resolve();
          } else if (child.exitCode !== null) {
            clearTimeout(timer);
            reject(new Error(`The process exited (${child.exitCode}) before printing ${String(text)}.\nstdout:\n${out}\nstderr:\n${err}`));
          } else waiters.push(check);
        };
        check();
        void exited.then(() => waiters.length > 0 && notify());
      });
    },
  };
}

/** Runs `lightbus ...args` to completion. */
export async function runCli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; input?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = startCli(args, options);
  const { code } = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}
