import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // The files share one RabbitMQ; running them one after another keeps the 2-core machine calm.
    fileParallelism: false,
  },
});
