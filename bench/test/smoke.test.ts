// Smoke test of the harness: a --quick run against the memory transport and the raw ioredis
// baseline, through the real two-process path, checking the JSON it writes. No speed assertions.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageDir = fileURLToPath(new URL('..', import.meta.url));
const outDir = mkdtempSync(join(tmpdir(), 'lbbench-'));

// The harness forks node processes: run it compiled (children start faster than under tsx).
beforeAll(async () => {
  await run(process.execPath, [createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: packageDir });
}, 60_000);

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

interface Row {
  target: string;
  scenario: string;
  inProcess: boolean;
  rate: number | null;
  ratioToRaw: number | null;
  ratioToWire: number | null;
  brokerUsPerMsg: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  clientCpuPct: number | null;
  workerCpuPct: number | null;
  workerRssRestMb: number | null;
  workerRssAfterMb: number | null;
  workerMaxRssMb: number | null;
  runs: { ops: number; errors: number; incomplete: boolean }[];
  failures: string[];
}

describe('pnpm bench --quick', () => {
  it('measures the memory bus and raw ioredis in every scenario and writes the JSON', async () => {
    const { stdout } = await run(
      process.execPath,
      ['dist/cli.js', '--quick', '--target', 'memory-bus,redis-raw', '--out', outDir],
      { cwd: packageDir, timeout: 60_000 },
    );
    expect(stdout).toContain('rate/s');
    const latest = JSON.parse(readFileSync(join(outDir, 'latest.json'), 'utf8')) as {
      options: { targets: string[]; scenarios: string[]; runs: number };
      results: Row[];
    };
    expect(latest.options.targets).toEqual(['memory-bus', 'redis-raw']);
    expect(latest.options.runs).toBe(1);
    const scenarios = ['events-bulk', 'events-serial', 'rpc-serial', 'rpc-concurrent'];
    expect(latest.results.map((r) => `${r.target}/${r.scenario}`).sort()).toEqual(
      scenarios.flatMap((s) => [`memory-bus/${s}`, `redis-raw/${s}`]).sort(),
    );
    for (const row of latest.results) {
      const where = `${row.target} ${row.scenario}`;
      expect(row.failures, where).toEqual([]);
      expect(row.runs, where).toHaveLength(1);
      expect(row.runs[0]!.ops, where).toBeGreaterThan(0);
      expect(row.runs[0]!.errors, where).toBe(0);
      expect(row.runs[0]!.incomplete, where).toBe(false);
      expect(row.rate, where).toBeGreaterThan(0);
      expect(row.clientCpuPct, where).toBeGreaterThan(0);
      expect(row.workerRssRestMb, where).toBeGreaterThan(0);
      expect(row.workerRssAfterMb, where).toBeGreaterThan(0);
      expect(row.workerMaxRssMb, where).toBeGreaterThan(0);
      expect(row.inProcess, where).toBe(row.target === 'memory-bus');
      // The in-process target has one process: no separate worker CPU.
      if (row.inProcess) expect(row.workerCpuPct, where).toBeNull();
      else expect(row.workerCpuPct, where).toBeGreaterThan(0);
      if (row.scenario === 'events-bulk') {
        expect(row.p50Ms, where).toBeNull();
      } else {
        expect(row.p50Ms, where).toBeGreaterThan(0);
        expect(row.p99Ms!, where).toBeGreaterThanOrEqual(row.p50Ms!);
      }
      // No raw baseline for memory; the raw rows are the baseline themselves.
      expect(row.ratioToRaw, where).toBeNull();
      expect(row.ratioToWire, where).toBeNull();
      // Redis reports its own CPU over the run; other brokers' rows have none.
      if (row.target === 'redis-raw') expect(row.brokerUsPerMsg, where).toBeGreaterThan(0);
      else expect(row.brokerUsPerMsg, where).toBeNull();
    }
    // The same document under its timestamped name.
    expect(stdout).toMatch(/Results: .*\.json/);
  });

  it('refuses an unknown target with the list of known ones', async () => {
    await expect(
      run(process.execPath, ['dist/cli.js', '--target', 'kafka-bus', '--out', outDir], { cwd: packageDir }),
    ).rejects.toMatchObject({ stderr: expect.stringContaining('Known: memory-bus') as unknown });
  });
});
