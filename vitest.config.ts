import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: QEMU under TCG is CPU-bound, so more parallel files only make each one slower.
    maxWorkers: 2,
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
