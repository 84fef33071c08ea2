// Prints one closing line over every package's vitest results: "Tests: N passed, N failed".
// Each package's `test` script writes .vitest-results.json (vitest's JSON reporter).
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const mode = process.argv[2] ?? 'report';
let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
for (const group of ['packages', 'examples', 'bench', 'docs', 'test-infra']) {
  const dir = join(root, group);
  if (!existsSync(dir)) continue;
  const entries = group === 'bench' || group === 'docs' || group === 'test-infra' ? ['.'] : readdirSync(dir);
  for (const name of entries) {
    const file = join(dir, name, '.vitest-results.json');
    if (!existsSync(file)) continue;
    if (mode === 'clean') {
      rmSync(file);
      continue;
    }
    const results = JSON.parse(readFileSync(file, 'utf8'));
    passed += results.numPassedTests ?? 0;
    failed += (results.numFailedTests ?? 0) + (results.numRuntimeErrorTestSuites ?? 0);
    skipped += (results.numPendingTests ?? 0) + (results.numTodoTests ?? 0);
    for (const suite of results.testResults ?? []) {
      for (const test of suite.assertionResults ?? []) {
        if (test.status === 'failed') failures.push(`${group}/${name}: ${test.fullName}`);
      }
    }
  }
}
if (mode === 'report') {
  for (const f of failures) console.log(`FAILED ${f}`);
  console.log(`Tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
}
