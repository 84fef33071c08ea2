import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { clearRows, readRows, RESULTS_ENV } from '../src/results.js';
import { formatTable } from '../src/tally.js';

/** Prepares the shared results file; after the run, prints one table per transport. */
export default function setup(): () => void {
  const dir = join(import.meta.dirname, '..', '.tmp');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'chaos-results.jsonl');
  clearRows(file);
  process.env[RESULTS_ENV] = file;
  return () => {
    const rows = readRows(file);
    if (rows.length > 0) console.log(`\n${formatTable(rows)}`);
  };
}
