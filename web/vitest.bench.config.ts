import { defineConfig } from 'vitest/config';

// scripts/bench console (web/bench/console.run.ts): figures, not a test of scripts/test.
export default defineConfig({
  test: {
    include: ['bench/**/*.run.ts'],
    environment: 'node',
    testTimeout: 600_000,
    hookTimeout: 120_000,
    globalSetup: ['tests/global-setup.ts'],
  },
});
