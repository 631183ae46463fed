import { defineConfig } from 'vitest/config';

// The client's tests run in Node against the real service, started by tests/service.ts.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    globalSetup: ['tests/global-setup.ts'],
  },
});
