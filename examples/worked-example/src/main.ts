import { runWorkedExample } from './worked-example.js';

try {
  await runWorkedExample();
} catch (error) {
  console.error(`The worked example failed: ${(error as Error).message}`);
  process.exitCode = 1;
}
