import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isRunning, killHard, makeTempDir, removeTempDir, spawnTracked, stopGracefully } from '../src/index.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

describe('tracked processes', () => {
  it('kills a process hard, even a paused one', async () => {
    const proc = spawnTracked('sleep', ['300']);
    process.kill(proc.pid, 'SIGSTOP');
    await killHard(proc);
    expect(isRunning(proc)).toBe(false);
    expect(alive(proc.pid)).toBe(false);
  });

  it('stops a process gracefully, and hard when it ignores the signal', async () => {
    const polite = spawnTracked('sleep', ['300']);
    expect(await stopGracefully(polite)).toBe('SIGTERM');
    const stubborn = spawnTracked('sh', ['-c', 'trap "" TERM; echo ready; while :; do sleep 0.1; done']);
    await waitFor(() => stubborn.output().includes('ready'), 5000);
    expect(await stopGracefully(stubborn, { timeoutMs: 300 })).toBe('SIGKILL');
    expect(alive(stubborn.pid)).toBe(false);
  });

  it('kills what a test process started even when that process is SIGKILLed (watchdog)', async () => {
    const parent = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures/orphan-parent.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve, reject) => {
      let out = '';
      parent.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(Number(out.trim()));
      });
      parent.once('exit', () => reject(new Error('the fixture exited early')));
    });
    expect(alive(pid)).toBe(true);
    parent.kill('SIGKILL');
    expect(await waitFor(() => !alive(pid), 5000)).toBe(true);
  });

  it('makes and removes temp folders', () => {
    const dir = makeTempDir('lightbus-selftest');
    expect(existsSync(dir)).toBe(true);
    removeTempDir(dir);
    expect(existsSync(dir)).toBe(false);
  });
});
