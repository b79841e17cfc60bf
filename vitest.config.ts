import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores, and the suite is CPU-bound (QEMU under TCG, a Node start per CLI call): with three workers, in a
    // run's first 20 minutes the machine was 96 % busy and each file took 1.46x as long, for 3 % more throughput.
    // Also measured, a whole run: the Debian-guest files first, two at a time, then the rest three at a time. The
    // machine was 91-100 % busy instead of 83 % on average, yet the run took as long (2822 s): the Debian files took
    // 1.4-1.55x as long side by side, the rest 1.3x as long three at a time. A busier machine did more work, not
    // the same work sooner.
    maxWorkers: 2,
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
