/**
 * Collecting table rows across test files: each file appends its rows to one JSON-lines file
 * (named by `LIGHTBUS_CHAOS_RESULTS`, set by the vitest global setup), and the global teardown
 * prints one table per transport at the end of the run.
 *
 * @module
 */
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { formatTable, type ScenarioRow } from './tally.js';

/** The environment variable naming the results file. */
export const RESULTS_ENV = 'LIGHTBUS_CHAOS_RESULTS';

/** Records a row (printed at once when no results file is set up). */
export function recordRow(row: ScenarioRow): void {
  const file = process.env[RESULTS_ENV];
  if (file) appendFileSync(file, `${JSON.stringify(row)}\n`);
  else console.log(`\n${formatTable([row])}`);
}

/** Reads every recorded row. */
export function readRows(file: string): ScenarioRow[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as ScenarioRow);
}

/** Deletes the results file. */
export function clearRows(file: string): void {
  rmSync(file, { force: true });
}
