import { defineConfig } from 'vitest/config';

// The console in Debian's Chromium (playwright-core) against the real service.
export default defineConfig({
  test: {
    include: ['tests/browser/**/*.test.ts'],
    environment: 'node',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    sequence: { concurrent: false },
    globalSetup: ['tests/global-setup.ts'],
  },
});
