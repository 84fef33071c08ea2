import { runQuickstart } from './quickstart.js';

try {
  await runQuickstart();
} catch (error) {
  console.error(`Quick start failed: ${(error as Error).message}`);
  process.exitCode = 1;
}
