import { defineConfig } from 'vitest/config';

const scale = Number(process.env['LIGHTBUS_CHAOS_SCALE'] ?? '1');

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Scenarios are bounded in time by themselves; these are the outer limits.
    testTimeout: 90_000 * Math.max(1, Math.min(scale, 10)),
    hookTimeout: 30_000,
    // One file at a time: the scenarios start real processes on a 2-core machine.
    fileParallelism: false,
  },
});
